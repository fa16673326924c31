"""Idempotent set-up of the REP'24 workloads and peers, into a cache directory.

Everything that takes a download or a build is done once and kept under the
cache (default ~/.cache/roar-rep24); a second call finds it there. What cannot
be had is reported, never silently dropped: `Setup.missing` says why.

Sources of what is built here (none of it is copied into this repository):
- apt: postmark, hey (the paper's HTTP load generator), strace, m4, gcc/g++.
- PyPI (pip): the sdists of BenchExec 3.20 (the paper's "smaller" tarball)
  and Django 5.1.4 (a larger real source tree), and pandas into a venv.
- fsatrace and SPLASH-3: from FSATRACE_SRC / SPLASH3_SRC if set, else
  `git clone` from GitHub, else from a local bare mirror if one is there.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
APT = {"postmark": "/usr/bin/postmark", "hey": "/usr/bin/hey", "strace": "/usr/bin/strace",
       "m4": "/usr/bin/m4", "g++": "/usr/bin/g++", "gcc": "/usr/bin/gcc"}
SDISTS = {"BenchExec": "3.20", "Django": "5.1.4"}
# The paper's python workload imports pandas (and reloads it); a fallback
# of standard-library modules is used when pandas cannot be installed.
PANDAS = "pandas"
GIT_COMMITS = 300

# (env var, GitHub URL, local bare mirror, subtree to take, what to build)
FSATRACE = ("FSATRACE_SRC", "https://github.com/jacereda/fsatrace",
            "/work/.mirror/jacereda+fsatrace/repo")
SPLASH3 = ("SPLASH3_SRC", "https://github.com/SakalisC/Splash-3",
           "/work/.mirror/SakalisC+Splash-3/repo")


def log(msg):
    print(f"setup: {msg}", file=sys.stderr, flush=True)


def sh(argv, **kw):
    kw.setdefault("check", True)
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([str(a) for a in argv], **kw)


class Setup:
    def __init__(self, cache):
        self.cache = Path(cache).expanduser()
        self.cache.mkdir(parents=True, exist_ok=True)
        self.missing = {}  # what -> why it is not available
        self.notes = {}  # what -> where it came from

    # -- system packages ---------------------------------------------------
    def apt(self):
        absent = [p for p, exe in APT.items() if not Path(exe).exists()]
        if absent and os.geteuid() == 0 and shutil.which("apt-get"):
            log(f"apt-get install {' '.join(absent)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            r = subprocess.run(["apt-get", "install", "-y", "-qq", *absent], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                log(f"apt-get failed: {r.stderr.strip()[-300:]}")
        for p, exe in APT.items():
            if not Path(exe).exists():
                self.missing[p] = f"{exe} not found (apt-get install {p})"

    # -- our small C programs ----------------------------------------------
    def c_programs(self):
        out = self.cache / "bin"
        out.mkdir(exist_ok=True)
        for name, libs in (("hello", []), ("lat", []), ("water", ["-lm"])):
            src, exe = HERE / "c" / f"{name}.c", out / name
            if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
                sh(["gcc", "-O2", "-o", exe, src, *libs])
        return out

    # -- PyPI ----------------------------------------------------------------
    def venv(self):
        """A venv of the system python with pandas, for the imports workload."""
        v = self.cache / "venv"
        py = v / "bin" / "python"
        if (v / ".pandas-ok").exists():
            return py, True
        base = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        try:
            if not py.exists():
                sh([base, "-m", "venv", v])
            log("pip install pandas (once)")
            sh([v / "bin" / "pip", "install", "-q", PANDAS])
            (v / ".pandas-ok").write_text("")
            return py, True
        except (subprocess.CalledProcessError, OSError) as e:
            why = e.stderr.decode(errors="replace")[-200:] if getattr(e, "stderr", None) else str(e)
            self.notes["python imports"] = f"pandas not installable ({why.strip()}); standard-library imports instead"
            return Path(base), False

    def sdists(self):
        d = self.cache / "sdist"
        d.mkdir(exist_ok=True)
        got = {}
        for name, ver in SDISTS.items():
            f = next(iter(d.glob(f"{name}-{ver}.tar.gz")), None) or next(iter(d.glob(f"{name.lower()}-{ver}.tar.gz")), None)
            if f is None:
                log(f"pip download {name}=={ver} (sdist, once)")
                pip = self.cache / "venv" / "bin" / "pip"
                pip = [str(pip)] if pip.exists() else [sys.executable, "-m", "pip"]
                r = subprocess.run([*pip, "download", "-q", "--no-deps", "--no-binary", ":all:",
                                    f"{name}=={ver}", "-d", str(d)], capture_output=True, text=True)
                f = next(iter(d.glob(f"{name}-{ver}.tar.gz")), None) or next(iter(d.glob(f"{name.lower()}-{ver}.tar.gz")), None)
                if f is None:
                    self.missing[f"sdist {name}"] = f"pip download failed: {r.stderr.strip()[-200:]}"
                    continue
            got[name] = f
        return got

    # -- sources from GitHub ----------------------------------------------
    def source(self, spec, dest, paths=()):
        """A source tree at `dest`: from $ENV, a clone, or a bare mirror."""
        env, url, mirror = spec
        if (dest / ".rep24-ok").exists():
            return dest, (dest / ".rep24-ok").read_text()
        shutil.rmtree(dest, ignore_errors=True)
        tried = []
        if os.environ.get(env):
            shutil.copytree(os.environ[env], dest, symlinks=True)
            origin = f"${env}={os.environ[env]}"
        else:
            origin = None
            r = subprocess.run(["git", "clone", "-q", "--depth", "1", url, str(dest)],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
            if r.returncode == 0:
                origin = url
            else:
                tried.append(f"git clone {url}: {r.stderr.strip()[-120:]}")
                shutil.rmtree(dest, ignore_errors=True)
                if Path(mirror).is_dir():
                    # `git archive` rather than a clone: a mirror may lack large
                    # files elsewhere in the tree, which makes a checkout fail.
                    dest.mkdir(parents=True)
                    arch = subprocess.Popen(["git", "--git-dir", mirror, "archive", "HEAD", *paths],
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                    subprocess.run(["tar", "x", "-C", str(dest)], stdin=arch.stdout, check=True)
                    if arch.wait() == 0:
                        origin = f"the mirror {mirror}"
                    else:
                        tried.append(f"git archive from {mirror} failed")
                else:
                    tried.append(f"no mirror at {mirror}")
            if origin is None:
                shutil.rmtree(dest, ignore_errors=True)
                return None, "; ".join(tried)
        (dest / ".rep24-ok").write_text(origin)
        return dest, origin

    def fsatrace(self):
        dest = self.cache / "fsatrace-src"
        src, origin = self.source(FSATRACE, dest)
        exe = dest / "fsatrace"
        if src is None:
            self.missing["fsatrace"] = f"no source ({origin}); set FSATRACE_SRC=DIR"
            return None
        if not (exe.exists() and (dest / "fsatrace.so").exists()):
            log(f"building fsatrace from {origin}")
            r = subprocess.run(["make", "-C", str(dest), "fsatrace", "fsatrace.so"], capture_output=True, text=True)
            if r.returncode != 0:
                self.missing["fsatrace"] = f"build failed: {r.stderr.strip()[-300:]}"
                return None
        self.notes["fsatrace"] = f"built from {origin}"
        return exe

    def water(self, bindir):
        """SPLASH-3 WATER-NSQUARED and its n512-p1 input, or our stand-in."""
        dest = self.cache / "splash3-src"
        app = "codes/apps/water-nsquared"
        src, origin = self.source(SPLASH3, dest, paths=("codes/Makefile.config", "codes/pthread_macros", app))
        if src is not None:
            exe = dest / app / "WATER-NSQUARED"
            if not exe.exists():
                log(f"building SPLASH-3 water-nsquared from {origin}")
                r = subprocess.run(["make", "-C", str(dest / app)], capture_output=True, text=True)
                if r.returncode != 0:
                    self.notes["water"] = f"SPLASH-3 build failed ({r.stderr.strip()[-200:]}); stand-in used"
                    src = None
            if src is not None:
                self.notes["water"] = f"SPLASH-3 WATER-NSQUARED built from {origin}"
                return exe, (dest / app / "inputs" / "n512-p1").read_text(), dest / app / "random.in"
        else:
            self.notes["water"] = f"SPLASH-3 source not reachable ({origin}); stand-in bench/rep24/c/water.c used"
        return bindir / "water", "512 3\n", None

    # -- the git repository of the checkout workload -------------------------
    def git_repo(self, tree_tgz):
        """A repository of GIT_COMMITS commits over a real source tree (the
        BenchExec sdist): each commit edits 5 files, every 10th adds one,
        every 15th deletes one. Built once, with fixed dates, so every
        machine gets the same history."""
        repo = self.cache / "gitrepo"
        if (repo / ".git" / "rep24-ok").exists():
            return repo
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir()
        sh(["tar", "xzf", tree_tgz, "-C", repo, "--strip-components", "1"])
        env = dict(os.environ, GIT_AUTHOR_NAME="rep24", GIT_AUTHOR_EMAIL="rep24@localhost",
                   GIT_COMMITTER_NAME="rep24", GIT_COMMITTER_EMAIL="rep24@localhost",
                   GIT_AUTHOR_DATE="2024-01-01T00:00:00Z", GIT_COMMITTER_DATE="2024-01-01T00:00:00Z")
        git = ["git", "-C", str(repo)]
        sh([*git, "init", "-q", "-b", "main"], env=env)
        sh([*git, "add", "-A"], env=env)
        sh([*git, "commit", "-q", "-m", "import"], env=env)
        files = sorted(p for p in repo.rglob("*.py") if ".git" not in p.parts)
        log(f"making a git history of {GIT_COMMITS} commits (once)")
        for i in range(1, GIT_COMMITS):
            for k in range(5):
                f = files[(i * 7 + k * 31) % len(files)]
                if f.exists():
                    with f.open("a") as fh:
                        fh.write(f"# rep24 commit {i} edit {k}\n")
            if i % 10 == 0:
                (repo / f"added_{i}.txt").write_text(f"file added by commit {i}\n" * 20)
            if i % 15 == 0:
                victim = files[(i * 13) % len(files)]
                if victim.exists():
                    victim.unlink()
            sh([*git, "add", "-A"], env=env)
            sh([*git, "commit", "-q", "-m", f"commit {i}"], env=env)
        (repo / ".git" / "rep24-ok").write_text("")
        return repo

    def all(self):
        self.apt()
        bindir = self.c_programs()
        py, pandas = self.venv()
        sdists = self.sdists()
        fsa = self.fsatrace()
        water, water_in, water_random = self.water(bindir)
        repo = self.git_repo(sdists["BenchExec"]) if "BenchExec" in sdists else None
        if repo is None:
            self.missing["git repo"] = "no BenchExec sdist to build it from"
        info = {"cache": str(self.cache), "bin": str(bindir), "python": str(py), "pandas": pandas,
                "sdists": {k: str(v) for k, v in sdists.items()}, "fsatrace": str(fsa) if fsa else None,
                "water": str(water), "water_input": water_in, "water_is_splash3": water_random is not None,
                "water_random": str(water_random) if water_random else None,
                "gitrepo": str(repo) if repo else None, "missing": self.missing, "notes": self.notes}
        (self.cache / "setup.json").write_text(json.dumps(info, indent=2))
        return info


if __name__ == "__main__":
    cache = sys.argv[1] if len(sys.argv) > 1 else "~/.cache/roar-rep24"
    print(json.dumps(Setup(cache).all(), indent=2))
