#!/usr/bin/env python3
"""A fresh machine has only what scripts/install-deps.sh installs.

Fails, naming the header or tool and its Debian package, when
- a system header that a source file includes (#include <...>) comes from a
  package that install-deps.sh does not install (libc, gcc and kernel headers
  excepted), or resolves nowhere;
- a program that the project's scripts run (shell scripts, the pm2 ecosystem
  file, the Python test drivers) comes from a package that is neither
  installed by install-deps.sh (or pulled in by one it installs) nor part of
  every Debian system (Essential, or Priority required/important).

Then it proves it can fail: the same check against install-deps' list with
uthash-dev and tmux removed must report exactly those two.

usage: deps_test.py [--repo DIR]
"""

import argparse
import glob
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Headers of the C library, the compiler and the kernel: there on any machine
# that has build-essential (which install-deps names).
BASE_HEADER_PKGS = re.compile(r"^(libc6-dev|linux-libc-dev|libgcc-\d+-dev|gcc-\d+|libstdc\+\+-\d+-dev|"
                              r"libclang-common-\d+-dev)$")
# pkg-config modules the build uses whose include dirs are not /usr/include.
PKG_CONFIG_MODULES = ["libmongoc-1.0", "libbson-1.0", "libcjson", "hiredis", "libsodium",
                      "sqlite3", "libedit", "cmocka"]
SCRIPT_GLOBS = ["scripts/*.sh", "ecosystem/cluster", "ecosystem/*.js", "tests/integration/*.sh",
                "tests/integration/*.py", "bench/*.sh", "bench/*/*.sh", "bench/*.py",
                ".ci/run"]


def sh(cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def install_list(repo):
    out = sh([f"{repo}/scripts/install-deps.sh", "--list"]).split()
    assert out, "scripts/install-deps.sh --list printed nothing"
    debs = {p.split(":", 1)[-1] for p in out if not p.startswith("npm:")}
    npm = {p[4:] for p in out if p.startswith("npm:")}
    return debs, npm


def dpkg_owners():
    """path -> package, from dpkg's own file lists (one pass, no dpkg -S per file)."""
    owners = {}
    for lst in glob.glob("/var/lib/dpkg/info/*.list"):
        pkg = os.path.basename(lst)[:-5].split(":")[0]
        with open(lst, errors="replace") as f:
            for line in f:
                owners.setdefault(line.rstrip("\n"), pkg)
    return owners


def owner_of(path, owners):
    for p in (path, os.path.realpath(path)):
        if p in owners:
            return owners[p]
        # /bin is /usr/bin on merged-/usr systems: dpkg knows one spelling
        alt = p[4:] if p.startswith("/usr/") else "/usr" + p
        if alt in owners:
            return owners[alt]
    return None


def package_fields():
    """package -> (depends names, essential, priority) for installed packages."""
    out = sh(["dpkg-query", "-W", "-f", "${Package}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\n"])
    info = {}
    for line in out.splitlines():
        name, ess, prio, deps = (line.split("\t") + ["", "", ""])[:4]
        names = set()
        for alt in deps.split(","):
            for d in alt.split("|"):
                d = d.strip().split(" ")[0].split(":")[0]
                if d:
                    names.add(d)
        info[name] = (names, ess == "yes", prio)
    return info


def provides_map():
    """virtual package -> real installed packages that provide it."""
    out = sh(["dpkg-query", "-W", "-f", "${Package}\t${Provides}\n"])
    prov = {}
    for line in out.splitlines():
        name, _, p = line.partition("\t")
        for v in p.split(","):
            v = v.strip().split(" ")[0]
            if v:
                prov.setdefault(v, set()).add(name)
    return prov


def closure(debs, info, prov):
    """The listed packages and everything they pull in (installed ones)."""
    seen, todo = set(), list(debs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for real in prov.get(p, ()):
            todo.append(real)
        todo.extend(info.get(p, (set(), False, ""))[0])
    return seen


def base_system(info):
    return {p for p, (_, ess, prio) in info.items() if ess or prio in ("required", "important")}


def include_dirs():
    out = subprocess.run(["cc", "-E", "-v", "-x", "c", "/dev/null"], capture_output=True,
                         text=True).stderr
    dirs, on = [], False
    for line in out.splitlines():
        if line.startswith("#include <...> search starts here"):
            on = True
        elif line.startswith("End of search list"):
            on = False
        elif on:
            dirs.append(line.strip())
    for m in PKG_CONFIG_MODULES:
        for flag in sh(["pkg-config", "--cflags-only-I", m]).split():
            dirs.append(flag[2:])
    return dirs


def system_headers(repo):
    heads = set()
    files = sh(["git", "-C", repo, "ls-files", "*.c", "*.h"]).split()
    for f in files:
        with open(os.path.join(repo, f), errors="replace") as fh:
            for m in re.finditer(r"^\s*#\s*include\s*<([^>]+)>", fh.read(), re.M):
                heads.add(m.group(1))
    return sorted(heads)


def check_headers(repo, allowed, owners):
    problems = []
    dirs = include_dirs()
    for h in system_headers(repo):
        path = next((os.path.join(d, h) for d in dirs if os.path.isfile(os.path.join(d, h))), None)
        if not path:
            problems.append(f"<{h}> is included but found in no include directory")
            continue
        pkg = owner_of(path, owners)
        if pkg is None:
            problems.append(f"<{h}> ({path}) belongs to no Debian package")
        elif not BASE_HEADER_PKGS.match(pkg) and pkg not in allowed:
            problems.append(f"<{h}> comes from the Debian package {pkg}, "
                            f"which scripts/install-deps.sh does not install")
    return problems


# Words at a command position in shell: line start, after | ; & && || ( $( `
# or a keyword, or behind a wrapper (exec, nice, timeout N, command -v ...).
SH_CMD = re.compile(r"(?:^|[|;&(`]|\$\(|\b(?:then|do|else|exec|nice|xargs|command -v|sudo|"
                    r"timeout(?: -\S+)* [0-9.]+[smh]?))\s*([A-Za-z0-9_][A-Za-z0-9_.+-]*)", re.M)
# Programs a Python or JS file starts: the first string of an argv list or a
# pm2 "script"/"interpreter" value, and names looked up on PATH.
PY_CMD = re.compile(r"(?:\[\s*|script:\s*|interpreter:\s*|which\(\s*)[\"']([A-Za-z0-9_][A-Za-z0-9_.+-]*)[\"']")


def script_commands(repo):
    cmds = {}
    for g in SCRIPT_GLOBS:
        for f in glob.glob(os.path.join(repo, g)):
            rel = os.path.relpath(f, repo)
            if rel == "tests/integration/deps_test.py":
                continue        # its own self-check names tools it does not run
            with open(f, errors="replace") as fh:
                text = fh.read()
            if f.endswith((".py", ".js")):
                found = PY_CMD.findall(text)
            else:
                text = re.sub(r"(?m)^\s*#.*$", "", text)      # comments
                text = re.sub(r"<<-?\s*'?(\w+)'?\n.*?\n\s*\1\n", "\n", text, flags=re.S)  # heredocs
                found = SH_CMD.findall(text)
            for c in found:
                cmds.setdefault(c, set()).add(rel)
    return cmds


# Where Debian's packages and npm's global tools put programs; a tool found
# only elsewhere (a pyenv shim, ~/bin) is this machine's, not a fresh one's.
TOOL_DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]


def which(cmd):
    for d in TOOL_DIRS:
        p = os.path.join(d, cmd)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def npm_tool(path, npm):
    real = os.path.realpath(path)
    return any(f"/node_modules/{t}/" in real for t in npm)


def check_tools(repo, allowed, base, owners, npm):
    problems = []
    for cmd, where in sorted(script_commands(repo).items()):
        path = which(cmd)
        if not path:
            continue            # a function, a variable or a project binary: not a system tool
        if npm_tool(path, npm):
            continue
        pkg = owner_of(path, owners)
        if pkg is None:
            if cmd in ("node", "npm", "npx") and "nodejs" in allowed:
                continue        # Node.js from elsewhere; install-deps falls back to Debian's
            problems.append(f"'{cmd}' ({path}, run by {', '.join(sorted(where))}) belongs to no "
                            f"Debian package and is not an npm tool of install-deps")
        elif pkg not in allowed and pkg not in base:
            problems.append(f"'{cmd}' comes from the Debian package {pkg} (run by "
                            f"{', '.join(sorted(where))}), which scripts/install-deps.sh does not install")
    return problems


def run_checks(repo, debs, npm, owners, info, prov, base):
    allowed = closure(debs, info, prov)
    return check_headers(repo, allowed, owners) + check_tools(repo, allowed, base, owners, npm)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=REPO)
    args = ap.parse_args()
    debs, npm = install_list(args.repo)
    owners, info, prov = dpkg_owners(), package_fields(), provides_map()
    base = base_system(info)
    missing = sorted(p for p in debs if p not in info)
    problems = [f"install-deps lists {p}, which is not installed (run scripts/install-deps.sh)"
                for p in missing if p not in ("nodejs", "npm")]
    problems += run_checks(args.repo, debs, npm, owners, info, prov, base)
    cmds = script_commands(args.repo)
    tools = sorted(c for c in cmds if which(c))
    print(f"checked {len(system_headers(args.repo))} system headers and "
          f"{len(tools)} programs run by the scripts: {' '.join(tools)}")
    # the check can fail: drop two packages and it must name exactly them
    pruned = run_checks(args.repo, debs - {"uthash-dev", "tmux"}, npm, owners, info, prov, base)
    named = sorted({m.group(1) for p in pruned for m in [re.search(r"Debian package ([^\s,]+)", p)] if m})
    if named != ["tmux", "uthash-dev"]:
        problems.append(f"self-check: without uthash-dev and tmux the check named {named}: {pruned}")
    for p in problems:
        print("FAIL:", p)
    print(f"{0 if problems else 1} passed, {1 if problems else 0} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
