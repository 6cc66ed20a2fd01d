--- Facts: what a host is (name, OS, architecture, interfaces, addresses,
-- whether systemd runs), gathered read-only in ONE round trip: a small POSIX
-- sh script run with host:exec, whose sectioned output is parsed here. The
-- addresses come from iproute2's JSON (`ip -j addr`, `ip -j route`), so
-- nothing depends on the human layout of `ip addr` or ifconfig.
--
-- The same function works on a node (etcdrun.host) and on the controller
-- (etcdrun.localhost), because both run the script through exec.
--
-- Shape (every field always present unless marked optional):
--   hostname, fqdn, kernel (uname -r), arch (uname -m), arch_go (amd64,
--   arm64, ...: release tarball naming), systemd (boolean),
--   os = { id, version_id, pretty_name, name, version_codename?, id_like? },
--   interfaces = { <ifname> = { ipv4 = {"10.0.0.5", ...}, ipv6 = {...},
--                  ipv4_cidr = {"10.0.0.5/24"}, ipv6_cidr = {...},
--                  mac, up, mtu, loopback } },
--   default_ipv4 (string or nil), default_interface, default_ipv4_source,
--   default_ipv6 (optional),
--   ansible = Ansible's names for the same facts (see ansible_view below).
--
-- default_ipv4, in order: (1) the source address of the default route's
-- interface; (2) when there is no default route (the lab's nodes have none,
-- on purpose: their traffic cannot leave), the address the host is reached
-- at, if that is an IPv4 literal configured on one of its interfaces;
-- (3) the first non-loopback IPv4 address, in interface index order.
-- default_ipv4_source says which ("route", "connection", "first").
local cjson = require("cjson")

local M = {}

local MARK = "@@etcdrun-facts:"

-- Each section is introduced by a marker line; a missing tool leaves its
-- section empty rather than failing the whole gather. hostname -f can ask
-- DNS, so its failure falls back to the short name.
local SCRIPT = table.concat({
   "m=" .. MARK,
   'echo "${m}hostname"; hostname 2>/dev/null || cat /etc/hostname',
   'echo "${m}fqdn"; hostname -f 2>/dev/null || hostname 2>/dev/null',
   'echo "${m}kernel"; uname -r',
   'echo "${m}arch"; uname -m',
   'echo "${m}systemd"; if [ -d /run/systemd/system ]; then echo yes; '
      .. 'elif [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then echo yes; else echo no; fi',
   'echo "${m}os"; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null',
   'echo "${m}addr"; ip -j addr show 2>/dev/null',
   'echo "${m}route4"; ip -j -4 route show default 2>/dev/null',
   'echo "${m}route6"; ip -j -6 route show default 2>/dev/null',
   'echo "${m}end"',
   "exit 0",
}, "\n")

-- uname -m -> GOARCH, the name release tarballs use (etcd-v3.5.4-linux-amd64).
local GOARCH = {
   x86_64 = "amd64", amd64 = "amd64", aarch64 = "arm64", arm64 = "arm64",
   armv7l = "arm", armv6l = "arm", i386 = "386", i686 = "386",
   ppc64le = "ppc64le", s390x = "s390x", riscv64 = "riscv64",
}

local function sections(out)
   local s = {}
   local name
   for line in out:gmatch("([^\n]*)\n?") do
      local n = line:sub(1, #MARK) == MARK and line:sub(#MARK + 1)
      if n then
         name = n
         s[name] = {}
      elseif name then
         table.insert(s[name], line)
      end
   end
   for k, lines in pairs(s) do
      s[k] = table.concat(lines, "\n"):gsub("%s+$", "")
   end
   return s
end

-- /etc/os-release: KEY=value lines, values optionally quoted.
local function parse_os_release(text)
   local kv = {}
   for line in (text or ""):gmatch("[^\n]+") do
      local k, v = line:match("^([%w_]+)=(.*)$")
      if k then
         v = v:match('^"(.*)"$') or v:match("^'(.*)'$") or v
         kv[k] = v:gsub('\\(["\\$`])', "%1")
      end
   end
   return {
      id = kv.ID or "linux",
      version_id = kv.VERSION_ID,
      pretty_name = kv.PRETTY_NAME or kv.NAME or "Linux",
      name = kv.NAME or "Linux",
      version_codename = kv.VERSION_CODENAME,
      id_like = kv.ID_LIKE,
   }
end

local function decode(json)
   if not json or json == "" then
      return nil
   end
   local ok, v = pcall(cjson.decode, json)
   if ok and type(v) == "table" then
      return v
   end
end

local function has_flag(flags, want)
   for _, f in ipairs(type(flags) == "table" and flags or {}) do
      if f == want then
         return true
      end
   end
   return false
end

-- `ip -j addr` -> { ifname -> interface }, and the names in index order.
local function parse_interfaces(links)
   local ifs, order = {}, {}
   for _, link in ipairs(links or {}) do
      local name = type(link.ifname) == "string" and link.ifname
      if name then
         local i = {
            ipv4 = {}, ipv6 = {}, ipv4_cidr = {}, ipv6_cidr = {},
            mac = type(link.address) == "string" and link.address or nil,
            up = has_flag(link.flags, "UP"),
            loopback = link.link_type == "loopback" or has_flag(link.flags, "LOOPBACK"),
            mtu = math.tointeger(link.mtu),
         }
         for _, a in ipairs(type(link.addr_info) == "table" and link.addr_info or {}) do
            local fam = a.family == "inet" and "ipv4" or a.family == "inet6" and "ipv6"
            if fam and type(a["local"]) == "string" then
               table.insert(i[fam], a["local"])
               table.insert(i[fam .. "_cidr"], ("%s/%s"):format(a["local"], tostring(math.tointeger(a.prefixlen))))
            end
         end
         ifs[name] = i
         order[#order + 1] = name
      end
   end
   return ifs, order
end

-- The default route with the lowest metric, and the address it leaves from.
local function default_route(routes, ifs, fam)
   local best
   for _, r in ipairs(routes or {}) do
      if type(r) == "table" and r.dst == "default" and type(r.dev) == "string" then
         local metric = tonumber(r.metric) or 0
         if not best or metric < best.metric then
            best = { dev = r.dev, metric = metric, src = r.prefsrc, gateway = r.gateway }
         end
      end
   end
   if not best then
      return nil
   end
   local addr = best.src
   if not addr and ifs[best.dev] then
      addr = ifs[best.dev][fam][1]
   end
   return addr, best.dev, best.gateway
end

local function prefix_to_netmask(p)
   p = tonumber(p) or 32
   local m = p == 0 and 0 or (0xffffffff << (32 - p)) & 0xffffffff
   return ("%d.%d.%d.%d"):format(m >> 24 & 255, m >> 16 & 255, m >> 8 & 255, m & 255)
end

local DISTRIBUTION = {
   debian = "Debian", ubuntu = "Ubuntu", centos = "CentOS", rhel = "RedHat", fedora = "Fedora",
   rocky = "Rocky", almalinux = "AlmaLinux", alpine = "Alpine", arch = "Archlinux", opensuse = "openSUSE",
}

local function os_family(os)
   local words = " " .. os.id .. " " .. (os.id_like or "") .. " "
   if words:find(" debian ") or words:find(" ubuntu ") then
      return "Debian"
   elseif words:find(" rhel ") or words:find(" fedora ") or words:find(" centos ") then
      return "RedHat"
   end
   return DISTRIBUTION[os.id] or os.name
end

-- Ansible's names for the same facts, so that templates written for
-- Ansible work unchanged: ansible_facts.eth1.ipv4.address,
-- ansible_facts.default_ipv4.address, ansible_facts.hostname, ... An
-- interface name with characters other than [A-Za-z0-9_] (br-lan) is
-- keyed with those replaced by "_" (br_lan), as Ansible does.
local function ansible_view(f, order)
   local a = {
      hostname = f.hostname,
      nodename = f.hostname,
      fqdn = f.fqdn,
      architecture = f.arch,
      kernel = f.kernel,
      system = "Linux",
      distribution = DISTRIBUTION[f.os.id] or f.os.name,
      distribution_version = f.os.version_id,
      distribution_major_version = f.os.version_id and f.os.version_id:match("^(%d+)"),
      distribution_release = f.os.version_codename,
      os_family = os_family(f.os),
      service_mgr = f.systemd and "systemd" or nil,
      default_ipv4 = f.default_ipv4 and { address = f.default_ipv4, interface = f.default_interface } or {},
      interfaces = {},
      all_ipv4_addresses = {},
      all_ipv6_addresses = {},
   }
   for _, name in ipairs(order) do
      local i = f.interfaces[name]
      local entry = { device = name, active = i.up, macaddress = i.mac, mtu = i.mtu }
      for n, addr in ipairs(i.ipv4) do
         local prefix = i.ipv4_cidr[n]:match("/(%d+)$")
         local v4 = { address = addr, prefix = prefix, netmask = prefix_to_netmask(prefix) }
         if n == 1 then
            entry.ipv4 = v4
         else
            entry.ipv4_secondaries = entry.ipv4_secondaries or {}
            table.insert(entry.ipv4_secondaries, v4)
         end
         if not i.loopback then
            table.insert(a.all_ipv4_addresses, addr)
         end
      end
      entry.ipv6 = {}
      for n, addr in ipairs(i.ipv6) do
         table.insert(entry.ipv6, { address = addr, prefix = i.ipv6_cidr[n]:match("/(%d+)$") })
         if not i.loopback then
            table.insert(a.all_ipv6_addresses, addr)
         end
      end
      table.insert(a.interfaces, name)
      a[(name:gsub("[^%w_]", "_"))] = entry
   end
   return a
end

--- Build the facts table from the gather script's output (exposed for tests).
---@param out string the script's stdout
---@param address? string where the host is reached (host.address)
---@return table facts
function M.parse(out, address)
   local s = sections(out)
   local f = {
      hostname = s.hostname ~= "" and s.hostname or nil,
      fqdn = s.fqdn ~= "" and s.fqdn or nil,
      kernel = s.kernel,
      arch = s.arch,
      systemd = s.systemd == "yes",
      os = parse_os_release(s.os),
   }
   f.fqdn = f.fqdn or f.hostname
   f.arch_go = GOARCH[f.arch or ""] or f.arch
   local order
   f.interfaces, order = parse_interfaces(decode(s.addr))
   local addr, dev = default_route(decode(s.route4), f.interfaces, "ipv4")
   if addr then
      f.default_ipv4, f.default_interface, f.default_ipv4_source = addr, dev, "route"
   else
      for _, name in ipairs(order) do
         for _, a in ipairs(f.interfaces[name].ipv4) do
            if a == address and not f.default_ipv4 then
               f.default_ipv4, f.default_interface, f.default_ipv4_source = a, name, "connection"
            end
         end
      end
   end
   if not f.default_ipv4 then
      for _, name in ipairs(order) do
         local i = f.interfaces[name]
         if not i.loopback and i.ipv4[1] then
            f.default_ipv4, f.default_interface, f.default_ipv4_source = i.ipv4[1], name, "first"
            break
         end
      end
   end
   f.default_ipv6 = default_route(decode(s.route6), f.interfaces, "ipv6")
   f.ansible = ansible_view(f, order)
   return f
end

--- Gather a host's facts in one round trip.
---@param host table a Host or LocalHost
---@param opts? {timeout?: number}
---@return table|nil facts, string? err, string? code
function M.gather(host, opts)
   local r, err, code = host:exec(SCRIPT, { timeout = opts and opts.timeout or 30 })
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 or not r.stdout:find(MARK .. "end", 1, true) then
      local why = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", ""):match("[^\n]*$")
      return nil, ("facts: gathering failed on %s (exit %d): %s"):format(host.name, r.status, why), "EFACTS"
   end
   return M.parse(r.stdout, host.address)
end

--- The first IPv4 address of interface `ifname`, or nil: the seed's
--- "private address of a member is the IPv4 of eth1" as a one-liner.
---@param f table facts
---@param ifname string
---@return string|nil
function M.address_of(f, ifname)
   local i = f and f.interfaces and f.interfaces[ifname]
   return i and i.ipv4[1]
end

--- Variables Ansible would inject for these facts: ansible_facts plus the
--- ansible_<name> shortcuts (ansible_hostname, ansible_eth1, ...).
---@param f table facts
---@return table vars
function M.ansible_vars(f)
   local v = { ansible_facts = f.ansible }
   for k, val in pairs(f.ansible) do
      v["ansible_" .. k] = val
   end
   return v
end

return M
