-- Secrets never appear in any output: one playbook per output channel run by
-- the binary on hosts the controller plays itself (ansible_connection=local),
-- its stdout and stderr captured together and searched for every form of
-- every secret. Each case also asserts that <secret> is printed where the
-- value would be, so a task that printed nothing cannot pass.
local helper = require("support.helper")
local codec = require("etcdrun.core.codec")
local cjson = require("cjson")
local fs = require("etcdrun.core.fs")

local q = helper.q

-- the secrets, and what must never be seen of them
local ML = "line-one-abcdef\nline-two-ghijkl\n" -- multi-line
local PW = 'pa"ss\\word-Q7' -- a quote and a backslash: escaped by debug and JSON
local SHORT, TINY = "q7", "Z" -- shorter than 4 characters
local INV = "Inv-Secret-Pass-55" -- secret() in a Lua inventory
local URLPW = "s3cretUrlPw"
local ARGKEY = "Plain-Key-Arg-9876" -- an argument a module declares secret

-- A site module whose argument `token` is declared secret.
local TOKEN_MODULE = [[
return {
   doc = "log in with a token",
   args = {
      token = { type = "string", secret = true, doc = "the token" },
      level = { type = "string", secret = true, choices = { "low", "high" }, doc = "a secret choice" },
   },
   check = function(ctx, args)
      return nil, "login refused for token " .. tostring(args.token), "EAUTH"
   end,
}
]]

-- A Lua inventory of three local hosts with secret() vars, a playbook of
-- `tasks` on `hosts` (default a), and the token module.
local function site(dir, tasks, hosts)
   helper.write(dir .. "/hosts.lua", ([[
local v = { ansible_connection = "local", db_pass = secret(%q), nested = { tok = secret("Nested-Tok-77") } }
return { groups = { web = { hosts = { a = v, b = v, c = v } } } }
]]):format(INV))
   fs.mkdir(dir .. "/modules")
   helper.write(dir .. "/modules/token.lua", TOKEN_MODULE)
   helper.write(dir .. "/site.lua", ([[
local D = %q
return {
   play "secrets" {
      hosts = %q,
      vars = { ml = secret(%q), pw = secret(%q), short = secret(%q), tiny = secret(%q) },
      tasks = {
%s
      },
   },
}
]]):format(dir, hosts or "a", ML, PW, SHORT, TINY, tasks))
end

-- Run the playbook; returns stdout and stderr together, and the exit code.
local function run(dir, flags)
   local out, err, code = helper.run(("cd %s && %s -i hosts.lua %s site.lua"):format(q(dir), q(helper.etcdrun),
      flags or ""))
   return out .. err, code
end

local function json_forms(s)
   return cjson.encode(s):sub(2, -2)
end

-- The key's body lines (as is and as JSON writes them).
local function key_lines(path)
   local lines = {}
   for line in assert(helper.read(path)):gmatch("[^\n]+") do
      if not line:find("-----", 1, true) then
         lines[#lines + 1] = line
         lines[#lines + 1] = json_forms(line)
      end
   end
   assert(#lines > 0)
   return lines
end

-- Assert that no form of any secret is in text.
local function hidden(text, extra)
   local never = { "line-one-abcdef", "line-two-ghijkl", "word-Q7", INV, "Nested-Tok-77", URLPW, ARGKEY,
      "PRIVATE KEY-----", codec.base64(PW):sub(1, 12) }
   for _, s in ipairs(extra or {}) do
      never[#never + 1] = s
   end
   for _, s in ipairs(never) do
      assert(not text:find(s, 1, true), ("secret %q printed in:\n%s"):format(s, text))
   end
   -- short ones: never as a word of their own
   for _, s in ipairs({ SHORT, TINY }) do
      assert(not text:find("%f[%w_]" .. s .. "%f[^%w_]"), ("short secret %q printed in:\n%s"):format(s, text))
   end
end

local function has(text, s)
   assert(text:find(s, 1, true), ("expected %q in:\n%s"):format(s, text))
end

local KEY_TASKS = [[
         task "key" { x509_key = { path = D .. "/k.pem" } },
         task "cat key" { command = { cmd = "cat " .. D .. "/k.pem" }, register = "k", changed_when = false },
]]

describe("secrets", function()
   it("terminal: failed tasks' messages, stderr and loop labels are redacted", function()
      local dir = helper.tmpdir()
      site(dir, [[
         task "labels" { debug = { msg = "x" }, loop = function(v) return { v.db_pass, v.short } end },
         task "stderr" { shell = { cmd = "echo 'token {{ pw }} {{ short }}' >&2; echo '{{ ml }}' >&2; exit 3" },
                         when = function(v) return v.inventory_hostname == "a" end },
         task "raises" { run = function(ctx, v) error("cannot log in with " .. v.pw .. " or " .. v.tiny, 0) end,
                         when = function(v) return v.inventory_hostname == "b" end },
         task "assert" { assert = { that = false, fail_msg = function(v) return "bad " .. v.ml end } },
]], "web")
      local text, code = run(dir)
      assert.are.equal(1, code, text)
      hidden(text)
      has(text, "token <secret> <secret>")
      has(text, "cannot log in with <secret> or <secret>")
      has(text, "bad <secret>")
      has(text, "labels (<secret>)")
      -- etcdrun's own words stay readable: a 1-character secret does not blank them
      has(text, "a          : ok=")
   end)

   it("-v: debug of multi-line, escaped, short and inventory secrets, and a private key read back", function()
      local dir = helper.tmpdir()
      site(dir, KEY_TASKS .. [[
         task "key var" { debug = { var = "k.stdout" } },
         task "key msg" { debug = { msg = "{{ k.stdout }}" } },
         task "ml" { debug = { var = "ml" } },
         task "pw" { debug = { var = "pw" } },
         task "short" { debug = { msg = "{{ tiny }}-{{ short }} Zebra q7x" } },
         task "inv" { debug = { var = "db_pass" } },
         task "nested" { debug = { var = "nested" } },
         task "echo" { shell = { cmd = "printf '%s\n' '{{ ml }}' | sed 's/^/    /'" } },
]])
      local text, code = run(dir, "-v")
      assert.are.equal(0, code, text)
      hidden(text, key_lines(dir .. "/k.pem"))
      has(text, 'k.stdout = "<secret>')
      has(text, 'ml = "<secret>"')
      has(text, 'pw = "<secret>"')
      has(text, "<secret>-<secret> Zebra q7x")
      has(text, 'db_pass = "<secret>"')
      has(text, "nested = {tok = <secret>}")
   end)

   it("-vv: long command output, base64 of a secret, the key in full", function()
      local dir = helper.tmpdir()
      site(dir, KEY_TASKS .. [[
         task "b64" { shell = { cmd = "printf %s '{{ pw }}' | base64 -w0; echo; printf 'x%s' '{{ pw }}' | base64" } },
         task "seq" { shell = { cmd = "seq 1 150; cat " .. D .. "/k.pem; printf '%s' '{{ ml }}'" } },
         task "part" { command = { cmd = "sed -n 2,3p " .. D .. "/k.pem" } },
]])
      local text, code = run(dir, "-vv")
      assert.are.equal(0, code, text)
      hidden(text, key_lines(dir .. "/k.pem"))
      has(text, "stdout: <secret>")
   end)

   it("-D: a multi-line secret in a file's content and in a step's own diff", function()
      local dir = helper.tmpdir()
      site(dir, [[
         task "copy" { copy = { dest = D .. "/f", content = function(v) return "head\n" .. v.ml .. "tail\n" end } },
         task "tpl" { copy = { dest = D .. "/g", content = "user={{ inventory_hostname }}\npass={{ pw }}\n" } },
         task "own diff" { run = function(ctx, v)
            local indented = v.ml:gsub("\n", "\n  ")
            return { changed = true, diff = { path = "/x", before = "keep\n",
               after = "keep\n  " .. indented .. "\nshort " .. v.short .. "\n" } }
         end },
]])
      local text, code = run(dir, "-D")
      assert.are.equal(0, code, text)
      hidden(text)
      -- a file holding a secret: its diff is hidden whole
      has(text, "--- " .. dir .. "/f\n      +++ " .. dir .. "/f\n      (content hidden: secret)")
      has(text, "--- " .. dir .. "/g\n      +++ " .. dir .. "/g\n      (content hidden: secret)")
      -- a step's own diff: the secret and each of its lines hidden
      has(text, "+++ /x")
      has(text, "+  <secret>")
      has(text, " keep")
   end)

   it("--json: every event's strings, escaped or not", function()
      local dir = helper.tmpdir()
      site(dir, KEY_TASKS .. [[
         task "pw" { debug = { var = "pw" } },
         task "ml" { debug = { msg = "{{ ml }}" } },
         task "copy" { copy = { dest = D .. "/f", content = function(v) return "head\n" .. v.ml end } },
         task "own diff" { run = function(ctx, v)
            return { changed = true, diff = { path = "/x", before = "", after = v.ml:gsub("\n", "\n ") } }
         end },
         task "own result" { run = function(ctx, v) return { changed = false, token = v.pw, lines = { v.ml } } end },
         task "fail" { shell = { cmd = "echo '{{ pw }} {{ short }}' >&2; exit 1" } },
]])
      local text, code = run(dir, "--json -v -D")
      assert.are.equal(1, code, text)
      hidden(text, key_lines(dir .. "/k.pem"))
      for line in text:gmatch("[^\n]+") do
         assert(pcall(cjson.decode, line), "not JSON: " .. line)
      end
      has(text, '"msg":"pw = \\"<secret>\\""')
      has(text, '"stderr":"<secret> <secret>\\n"')
      -- a module's own result fields travel in "result", redacted too
      has(text, '"token":"<secret>"')
   end)

   it("error messages: a declared-secret argument, URL credentials", function()
      local dir = helper.tmpdir()
      site(dir, ([[
         task "arg" { token = { token = %q }, ignore_errors = true },
         task "url" { download = { url = "http://user:%s@127.0.0.1:1/etcd.tar.gz", dest = D .. "/e.tgz",
                                   sha256 = ("0"):rep(64) }, register = "dl", ignore_errors = true },
         task "sums" { download = { url = "http://u:%s@127.0.0.1:1/etcd.tar.gz", dest = D .. "/e.tgz",
                                    sums_url = "http://u:%s@127.0.0.1:1/SHA256SUMS" }, ignore_errors = true },
         task "dl var" { debug = { var = "dl" } },
         task "fails" { token = { token = %q } },
]]):format(ARGKEY, URLPW, URLPW, URLPW, ARGKEY))
      local text, code = run(dir, "-v")
      assert.are.equal(1, code, text)
      hidden(text)
      has(text, "login refused for token <secret>")
      has(text, "http://***@127.0.0.1:1/")
      local json = run(dir, "--json -v")
      hidden(json)
      has(json, "login refused for token <secret>")
      has(json, "***@127.0.0.1:1")
      -- a secret argument's value is not repeated when it is refused at load
      site(dir, ([[
         task "arg" { token = { level = %q } },
]]):format(ARGKEY))
      text, code = run(dir)
      assert.are.equal(1, code, text)
      hidden(text)
      has(text, "must be one of low, high, got '<secret>'")
   end)

   it("download: check mode and diffs show no URL credentials", function()
      local dir = helper.tmpdir()
      site(dir, ([[
         task "url" { download = { url = "http://user:%s@127.0.0.1:1/etcd.tar.gz", dest = D .. "/e.tgz",
                                   sha256 = ("0"):rep(64) } },
]]):format(URLPW))
      local text, code = run(dir, "-C -D -v")
      assert.are.equal(0, code, text)
      hidden(text)
      has(text, "would download and push http://***@127.0.0.1:1/etcd.tar.gz")
   end)

   it("REPL: values, !cmd output, module results, errors; the inventory's and the session's secrets", function()
      local dir = helper.tmpdir()
      site(dir, "")
      helper.write(dir .. "/input", table.concat({
         'inventory:host("a").vars',
         "!echo " .. INV,
         'debug{var = "db_pass"}',
         'pw = secret("Repl-Pw-1234")',
         "pw",
         "pw.value",
         "({ pw.value, n = 3 })",
         "!echo Repl-Pw-1234 >&2",
         'error("cannot use " .. pw.value)',
         ('x509_key{path = %q}'):format(dir .. "/rk.pem"),
         "!cat " .. dir .. "/rk.pem",
         ('host("a"):read(%q)'):format(dir .. "/rk.pem"),
         ('(function() error(host("a"):read(%q)) end)()'):format(dir .. "/rk.pem"),
      }, "\n") .. "\n")
      local out, err, code = helper.run(("cd %s && %s repl -i hosts.lua a < input"):format(q(dir),
         q(helper.etcdrun)))
      local text = out .. err
      assert.are.equal(1, code, text) -- the error() lines failed
      hidden(text, { "Repl-Pw-1234", table.unpack(key_lines(dir .. "/rk.pem")) })
      has(out, "db_pass = <secret>")
      has(out, "a: <secret>")
      has(out, 'debug (0.00s): db_pass = "<secret>"')
      has(err, "cannot use <secret>")
      has(out, "a:\n  <secret>")
   end)

   it("ad-hoc: command output, human and --json, hides the inventory's secrets and private keys", function()
      local dir = helper.tmpdir()
      site(dir, "")
      local cmd = ("printf '%%s\\n' %s; openssl genpkey -algorithm ed25519 2>/dev/null"):format(q(INV))
      local out, err, code = helper.run(("cd %s && %s -i hosts.lua a -a %s"):format(q(dir), q(helper.etcdrun), q(cmd)))
      assert.are.equal(0, code, out .. err)
      hidden(out .. err)
      has(out, "  <secret>")
      out, err, code = helper.run(("cd %s && %s -i hosts.lua a --json -a %s"):format(q(dir), q(helper.etcdrun),
         q(cmd)))
      assert.are.equal(0, code, out .. err)
      hidden(out .. err)
      assert.is_table(cjson.decode(out:match("[^\n]+")))
      has(out, "<secret>")
   end)
end)
