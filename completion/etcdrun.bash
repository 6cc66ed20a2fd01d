# bash completion for etcdrun (installed as
# /usr/share/bash-completion/completions/etcdrun). The words come from the
# binary itself (`etcdrun complete ...`), so they follow its options, its
# inventory loader and its installed playbooks without a copy here: options,
# playbooks (*.lua here and the installed ones), host and group names of the
# inventory given with -i (else ./hosts), module names after `doc`.

# Host patterns: complete the name after the last : & ! or , of the word.
_etcdrun_hosts()
{
    local bin=$1 inv=$2 cur=$3 pre=
    [[ $cur == *[:\&!,]* ]] && pre=${cur%"${cur##*[:&!,]}"}
    local IFS=$'\n'
    COMPREPLY+=($(compgen -P "$pre" -W "$("$bin" complete hosts -i "$inv" 2>/dev/null)" -- "${cur#"$pre"}"))
}

_etcdrun()
{
    local cur prev words cword
    # = and : stay inside words: --inventory=FILE, host patterns like web:!web3
    _init_completion -n =: || return
    local bin=${words[0]} inv=hosts i spec line
    local -a names=() valued=()
    while IFS=$'\t' read -r spec _; do
        names+=("${spec%% *}")
        [[ $spec == *' '* ]] && valued+=("${spec%% *}")
    done < <("$bin" complete options 2>/dev/null)

    # the inventory named so far, and the first word that is not an option
    local first= skip=
    for ((i = 1; i < cword; i++)); do
        line=${words[i]}
        if [[ -n $skip ]]; then
            skip=
            [[ ${words[i - 1]} == -i || ${words[i - 1]} == --inventory ]] && inv=$line
            continue
        fi
        case $line in
            --inventory=*) inv=${line#--inventory=} ;;
            -*) [[ " ${valued[*]} " == *" $line "* ]] && skip=1 ;;
            *) [[ -z $first ]] && first=$line ;;
        esac
    done

    case $prev in
        -i | --inventory | -k | --key | --known-hosts | --ssh-config)
            _filedir
            return
            ;;
        -l | --limit)
            _etcdrun_hosts "$bin" "$inv" "$cur"
            __ltrim_colon_completions "$cur"
            return
            ;;
        --host-key)
            COMPREPLY=($(compgen -W 'strict accept-new' -- "$cur"))
            return
            ;;
    esac
    # any other option that takes a value: nothing to offer
    [[ $prev == -* && " ${valued[*]} " == *" $prev "* ]] && return

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${names[*]}" -- "$cur"))
        return
    fi
    case $first in
        doc)
            COMPREPLY=($(compgen -W "$("$bin" complete modules 2>/dev/null)" -- "$cur"))
            ;;
        repl)
            _etcdrun_hosts "$bin" "$inv" "$cur"
            __ltrim_colon_completions "$cur"
            ;;
        '')
            # a playbook (here or installed), a host pattern (ad-hoc), repl or doc
            # an installed playbook by its path or its name: `tls<Tab>` gives the path
            while IFS= read -r line; do
                [[ $line == "$cur"* || ${line##*/} == "$cur"* ]] && COMPREPLY+=("$line")
            done < <("$bin" complete playbooks 2>/dev/null)
            COMPREPLY+=($(compgen -W 'repl doc' -- "$cur"))
            _etcdrun_hosts "$bin" "$inv" "$cur"
            __ltrim_colon_completions "$cur"
            _filedir lua
            ;;
    esac
} &&
    complete -F _etcdrun etcdrun ./etcdrun # ./etcdrun: a checkout's binary
