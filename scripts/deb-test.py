#!/usr/bin/env python3
"""Checks the cxr-edge Debian packages (scripts/package-deb.sh builds them).

    scripts/deb-test.py --amd64 cxr-edge_*_amd64.deb --arm64 cxr-edge_*_arm64.deb

For each package: lintian (pedantic; every tag must be overridden in
board/deb/lintian-overrides, with its reason), the control fields, the file list
(binary for the right CPU, unit, udev rules, example configs, model files against
the manifest's hashes and the source bundle, the conffile and what it points at)
and the maintainer scripts. Then the installed files run: the amd64 package is
installed with dpkg into a throwaway Debian root (a minimal bookworm made once by
mmdebstrap and cached under $CXR_CACHE/deb-base) and `cxr-edge info` and `cxr-edge
report --json` run there from the installed binary, model and config; the postinst
runs twice, `dpkg --verify` finds a changed model file, the unit's command serves
with the installed config, an upgrade keeps an edited conffile, remove and purge
remove what they should.
The arm64 package's binary runs from its unpacked files under qemu-aarch64, and both
architectures must flag the same findings. Needs root (dpkg in a chroot).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CXR_CACHE", Path.home() / ".cache/cxr-edge"))
BASE = CACHE / "deb-base" / "bookworm-minbase.tar.zst"
MODEL = "/usr/share/cxr-edge/model"
CONFFILE = "/etc/cxr-edge/config.toml"
SAMPLES = ["nih_00001582_023_cardiomegaly_effusion.png", "nih_00001638_000_normal.dcm"]
GROUPS = ["spi", "gpio", "i2c", "video"]
ELF_MACHINE = {"amd64": 62, "arm64": 183}
QEMU = ["qemu-aarch64", "-cpu", "cortex-a72"]
# Debian's PATH for root (/etc/profile).
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def run(cmd, **kw):
    """Runs a command; its output, or Failed naming it and what it printed."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise Failed(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p.stdout


def source_bundle():
    """The bundle folder Cargo.toml's package metadata installs as the model."""
    meta = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["metadata"]["deb"]
    for src, dest, _mode in meta["assets"]:
        if dest.rstrip("/") == MODEL.lstrip("/"):
            check(src.endswith("/*"), f"Cargo.toml: model asset {src} is not a folder/*")
            return ROOT / src[:-2]
    raise Failed("Cargo.toml: no asset installs " + MODEL)


def lintian(deb):
    out = run(["lintian", "--display-info", "--pedantic", "--info", "--fail-on", "error,warning,info,pedantic", deb])
    print(out.strip() or "  lintian: no tags (overrides in board/deb/lintian-overrides)")


def control(deb, arch, tmp):
    fields = run(["dpkg-deb", "-f", deb, "Package", "Architecture", "Depends"])
    check(f"Architecture: {arch}" in fields, f"{deb}: not {arch}:\n{fields}")
    check("adduser" in fields and "libc6" in fields, f"{deb}: Depends lacks adduser or libc6")
    ctl = tmp / "DEBIAN"
    run(["dpkg-deb", "-e", deb, ctl])
    conffiles = (ctl / "conffiles").read_text().split()
    check(conffiles == [CONFFILE], f"conffiles are {conffiles}, want [{CONFFILE}]")
    md5 = dict(reversed(line.split(None, 1)) for line in (ctl / "md5sums").read_text().splitlines())
    check("usr/bin/cxr-edge" in md5 and f"{MODEL.lstrip('/')}/manifest.json" in md5, "md5sums incomplete")
    for script in ["postinst", "postrm", "prerm"]:
        run(["sh", "-n", ctl / script])
    postinst = (ctl / "postinst").read_text()
    for needle in ["deb-systemd-helper enable cxr-edge.service", "deb-systemd-invoke",
                   "adduser --quiet --system", "addgroup --quiet --system"]:
        check(needle in postinst, f"postinst lacks `{needle}`")
    postrm = (ctl / "postrm").read_text()
    check("deb-systemd-helper purge cxr-edge.service" in postrm, "postrm does not purge the unit")


def files(deb, arch, tree):
    """The unpacked package's files against the sources they come from."""
    run(["dpkg-deb", "-x", deb, tree])
    binary = tree / "usr/bin/cxr-edge"
    head = binary.read_bytes()[:20]
    check(head[:4] == b"\x7fELF", "usr/bin/cxr-edge is not an ELF file")
    check(int.from_bytes(head[18:20], "little") == ELF_MACHINE[arch], f"usr/bin/cxr-edge is not {arch}")
    check(os.access(binary, os.X_OK), "usr/bin/cxr-edge is not executable")
    unit = (tree / "usr/lib/systemd/system/cxr-edge.service").read_text()
    check("ExecStart=/usr/bin/cxr-edge serve --config /etc/cxr-edge/config.toml" in unit,
          "unit does not start /usr/bin/cxr-edge with the conffile")
    check("Documentation=file:///usr/share/doc/cxr-edge/README.md" in unit, "unit's Documentation")
    same = [("lib/udev/rules.d/99-cxr-edge.rules", "board/99-cxr-edge.rules"),
            ("usr/share/doc/cxr-edge/README.md", "board/README.md")]
    same += [(f"usr/share/doc/cxr-edge/examples/{p.name}", f"board/{p.name}")
             for p in sorted((ROOT / "board").glob("*.toml"))]
    for installed, src in same:
        check((tree / installed).read_bytes() == (ROOT / src).read_bytes(), f"{installed} differs from {src}")
    check((tree / "usr/share/doc/cxr-edge/copyright").is_file(), "no copyright file")
    config = tomllib.loads((tree / CONFFILE.lstrip("/")).read_text())
    check(config.get("model") == MODEL, f"{CONFFILE}: model is {config.get('model')}, want {MODEL}")
    check(config.get("store") == "/var/lib/cxr-edge", f"{CONFFILE}: store is {config.get('store')}")
    model_files(tree / MODEL.lstrip("/"))


def model_files(model):
    manifest = json.loads((model / "manifest.json").read_text())
    listed = manifest.get("files", {})
    check(len(listed) >= 3, f"{MODEL}/manifest.json lists only {len(listed)} files")
    for name, entry in listed.items():
        data = (model / name).read_bytes()
        got = hashlib.sha256(data).hexdigest()
        check(got == entry["sha256"], f"{MODEL}/{name}: sha256 {got}, manifest says {entry['sha256']}")
        check(len(data) == entry["bytes"], f"{MODEL}/{name}: {len(data)} bytes, manifest says {entry['bytes']}")
    src = source_bundle()
    want = sorted(p.name for p in src.iterdir() if p.is_file())
    have = sorted(p.name for p in model.iterdir())
    check(have == want, f"{MODEL} holds {have}, {src} holds {want}")
    for n in want:
        check((model / n).read_bytes() == (src / n).read_bytes(), f"{MODEL}/{n} differs from {src / n}")
    print(f"  model: {len(listed)} files match the manifest's sha256; bundle = {src.relative_to(ROOT)}")


def check_info(out, model):
    manifest = (model / "manifest.json").read_bytes()
    model_id = json.loads(manifest)["model_id"]
    check(f"model id    {model_id}" in out, f"info does not name model {model_id}:\n{out}")
    check(f"bundle hash {hashlib.sha256(manifest).hexdigest()}" in out, f"info's bundle hash:\n{out}")


def check_reports(out, model):
    """One JSON report per sample, from this model, with findings that agree with
    their scores and thresholds. Returns {sample: {finding: score}}."""
    manifest_bytes = (model / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    thresholds = {o["observation"]: o["threshold"] for o in manifest["observations"]}
    reports = [json.loads(line) for line in out.splitlines() if line.strip()]
    check(len(reports) == len(SAMPLES), f"{len(reports)} reports for {len(SAMPLES)} samples:\n{out}")
    scores = {}
    for r in reports:
        name = Path(r["study"]["source"]).name
        check(r["model_id"] == manifest["model_id"], f"{name}: model {r['model_id']}")
        check(r["bundle_hash"] == hashlib.sha256(manifest_bytes).hexdigest(), f"{name}: bundle hash")
        check(isinstance(r["impression"], str) and r["impression"].strip(), f"{name}: empty impression")
        seen = [f["observation"] for f in r["findings"]]
        check(seen == list(thresholds), f"{name}: findings {seen}, manifest {list(thresholds)}")
        for f in r["findings"]:
            check(0.0 <= f["score"] <= 1.0, f"{name}: {f['observation']} score {f['score']}")
            check(f["threshold"] == thresholds[f["observation"]], f"{name}: {f['observation']} threshold")
            check(f["flagged"] == (f["score"] >= f["threshold"]), f"{name}: {f['observation']} flag")
        scores[name] = {f["observation"]: f["score"] for f in r["findings"]}
        flagged = [f["observation"] for f in r["findings"] if f["flagged"]]
        print(f"  {name}: flags {flagged or 'none'}; \"{r['impression'][:70]}...\"")
    return scores


def base_root(dest):
    """A minimal bookworm (with adduser, the package's one non-libc dependency),
    made once by mmdebstrap and cached, unpacked into dest."""
    if not BASE.is_file():
        BASE.parent.mkdir(parents=True, exist_ok=True)
        part = BASE.with_suffix(".part.tar.zst")
        run(["mmdebstrap", "--quiet", "--variant=minbase", "--include=adduser", "bookworm", part])
        part.rename(BASE)
    dest.mkdir()
    run(["tar", "--zstd", "-xf", BASE, "-C", dest])


def chroot(root, *cmd, user=None):
    spec = ["--userspec", user] if user else []
    return run(["chroot", *spec, root, "env", "-i", *[f"{k}={v}" for k, v in CLEAN_ENV.items()], *cmd])


def identities(root):
    return (root / "etc/passwd").read_text(), (root / "etc/group").read_text()


def install_amd64(deb, tmp):
    root = tmp / "root"
    base_root(root)
    shutil.copy(deb, root / "tmp/cxr-edge.deb")
    for s in SAMPLES:
        shutil.copy(ROOT / "samples" / s, root / "tmp" / s)
    chroot(root, "dpkg", "-i", "/tmp/cxr-edge.deb")
    user = chroot(root, "id", "cxr")
    for g in GROUPS:
        check(f"({g})" in user, f"cxr is not in group {g}: {user}")
    check(chroot(root, "stat", "-c", "%U:%G %a", "/var/lib/cxr-edge").strip() == "cxr:cxr 750",
          "/var/lib/cxr-edge is not cxr:cxr 0750")
    wants = root / "etc/systemd/system/multi-user.target.wants/cxr-edge.service"
    check(wants.is_symlink(), "the unit is not enabled (no multi-user.target.wants link)")
    verify_detects_corruption(root)
    before = identities(root)
    chroot(root, "/var/lib/dpkg/info/cxr-edge.postinst", "configure", "0.1.0-1")
    check(identities(root) == before, "a second postinst run changed /etc/passwd or /etc/group")
    print("  installed: cxr user in " + ", ".join(GROUPS) + "; unit enabled; postinst ran twice, no change")

    model = root / MODEL.lstrip("/")
    config = tomllib.loads((root / CONFFILE.lstrip("/")).read_text())
    check_info(chroot(root, "cxr-edge", "info", config["model"], user="cxr:cxr"), model)
    out = chroot(root, "cxr-edge", "report", "--json", "--model", config["model"],
                 *[f"/tmp/{s}" for s in SAMPLES], user="cxr:cxr")
    scores = check_reports(out, model)
    serve_installed_config(root, model)

    upgrade_keeps_conffile(root, tmp)
    chroot(root, "dpkg", "--remove", "cxr-edge")
    check((root / CONFFILE.lstrip("/")).is_file(), f"remove (not purge) took {CONFFILE}")
    check(not (root / "usr/bin/cxr-edge").exists(), "remove left /usr/bin/cxr-edge")
    chroot(root, "dpkg", "--purge", "cxr-edge")
    check(not (root / "etc/cxr-edge").exists(), "purge left /etc/cxr-edge")
    check(not (root / "usr/bin/cxr-edge").exists(), "purge left /usr/bin/cxr-edge")
    check(not wants.exists() and not wants.is_symlink(), "purge left the unit enabled")
    check((root / "var/lib/cxr-edge").is_dir(), "purge removed the store /var/lib/cxr-edge")
    print("  remove: binary gone, config kept; purge: config and unit links gone; store and user kept")
    return scores


def verify_detects_corruption(root):
    """`dpkg --verify` (from the md5sums package-deb.sh adds) passes, then names a
    model file with one byte changed."""
    def verify():
        return subprocess.run(["chroot", root, "dpkg", "--verify", "cxr-edge"],
                              capture_output=True, text=True).stdout
    check(verify() == "", f"dpkg --verify on a fresh install:\n{verify()}")
    victim = root / MODEL.lstrip("/") / "vocab.json"
    data = victim.read_bytes()
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    try:
        check(f"{MODEL}/vocab.json" in verify(), "dpkg --verify misses a changed model file")
    finally:
        victim.write_bytes(data)
    print("  dpkg --verify: clean install passes, a changed model file is named")


def serve_installed_config(root, model, deadline_s=300):
    """The unit's command (ExecStart) as the unit's user with the installed
    config: a film dropped in the watched folder is reported into the store and
    drawn on the (PNG) screen. deadline_s only bounds a hang; nothing is timed."""
    config = tomllib.loads((root / CONFFILE.lstrip("/")).read_text())
    run(["install", "-d", "-m", "0755", root / "run/cxr-edge"])  # systemd's RuntimeDirectory
    chroot(root, "chown", "cxr:cxr", "/run/cxr-edge")
    drop = config["watch"]["dir"]
    shutil.copy(ROOT / "samples" / SAMPLES[0], root / drop.lstrip("/") / SAMPLES[0])
    chroot(root, "chown", "cxr:cxr", f"{drop}/{SAMPLES[0]}")
    log = root / "tmp/serve.log"
    store = root / config["store"].lstrip("/")
    with open(log, "w") as f:
        unit = subprocess.Popen(["chroot", "--userspec", "cxr:cxr", root, "env", "-i", "RUST_LOG=info",
                                 *[f"{k}={v}" for k, v in CLEAN_ENV.items()],
                                 "/usr/bin/cxr-edge", "serve", "--config", CONFFILE],
                                stdout=f, stderr=subprocess.STDOUT)
        try:
            for _ in range(deadline_s * 2):
                if list((store / "reported").glob("*.done")) or unit.poll() is not None:
                    break
                time.sleep(0.5)
        finally:
            unit.terminate()
            unit.wait(timeout=60)
    reports = list((store / "outbox").glob("*/report.json"))
    check(len(reports) == 1, f"serve with {CONFFILE} wrote {len(reports)} reports:\n{log.read_text()}")
    report = json.loads(reports[0].read_text())
    check(report["model_id"] == json.loads((model / "manifest.json").read_text())["model_id"],
          f"served report's model {report['model_id']}")
    screen = root / config["display"]["path"].lstrip("/")
    check(screen.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no PNG screen at {config['display']['path']}")
    print(f"  serve --config {CONFFILE} as cxr: dropped film reported into {config['store']}, screen drawn")


def manual_route(deb, tree, tmp):
    """board/install.sh, the fallback: in a fresh root (systemctl and udevadm
    replaced by stubs that only log, as there is no running systemd), it installs
    the binary, unit and config under its own paths; it refuses once the package
    is there."""
    root = tmp / "manual"
    base_root(root)
    for tool in ["systemctl", "udevadm"]:
        stub = root / "usr/local/sbin" / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> /tmp/stub.log\n')
        stub.chmod(0o755)
    (root / "etc/udev/rules.d").mkdir(parents=True)
    shutil.copytree(ROOT / "board", root / "tmp/board")
    shutil.copytree(tree / MODEL.lstrip("/"), root / "tmp/model")
    shutil.copy(tree / "usr/bin/cxr-edge", root / "tmp/cxr-edge")
    args = ["sh", "/tmp/board/install.sh", "/tmp/cxr-edge", "/tmp/board/rpi5-st7789.toml", "/tmp/model"]
    chroot(root, *args)
    unit = (root / "etc/systemd/system/cxr-edge.service").read_text()
    check("ExecStart=/usr/local/bin/cxr-edge serve" in unit, "install.sh's unit does not start /usr/local/bin")
    check("file:///usr/local/share/doc/cxr-edge/" in unit, "install.sh's unit's Documentation")
    check("systemctl enable cxr-edge.service" in (root / "tmp/stub.log").read_text(), "install.sh enabled nothing")
    check_info(chroot(root, "/usr/local/bin/cxr-edge", "info", "/var/lib/cxr-edge/model", user="cxr:cxr"),
               root / "var/lib/cxr-edge/model")
    shutil.copy(deb, root / "tmp/cxr-edge.deb")
    # The package meets install.sh's config: dpkg's conffile question, no answer, unpacked only.
    subprocess.run(["chroot", root, "dpkg", "-i", "/tmp/cxr-edge.deb"], capture_output=True, stdin=subprocess.DEVNULL)
    refused = subprocess.run(["chroot", root, *args], capture_output=True, text=True)
    check(refused.returncode != 0 and "package is installed" in refused.stderr,
          f"install.sh ran over the package: {refused.stderr}")
    print("  manual route: install.sh installs under /usr/local, its binary and model pass `info`; it refuses over the package")


def upgrade_keeps_conffile(root, tmp):
    """Installs the same files as version +1 over an edited conffile: the edit stays."""
    conf = root / CONFFILE.lstrip("/")
    edited = conf.read_text().replace('threads = 4', 'threads = 2')
    check(edited != conf.read_text(), f"{CONFFILE} has no `threads = 4` line to edit")
    conf.write_text(edited)
    tree = tmp / "next"
    run(["dpkg-deb", "-R", root / "tmp/cxr-edge.deb", tree])
    ctl = tree / "DEBIAN/control"
    ctl.write_text(ctl.read_text().replace("Version: 0.1.0-1", "Version: 0.1.0-2"))
    run(["dpkg-deb", "--root-owner-group", "-Znone", "-b", tree, root / "tmp/next.deb"])
    shutil.rmtree(tree)
    chroot(root, "dpkg", "-i", "/tmp/next.deb")
    check(conf.read_text() == edited, f"the upgrade replaced the edited {CONFFILE}")
    version = chroot(root, "dpkg-query", "-W", "-f=${Version}", "cxr-edge")
    check(version == "0.1.0-2", f"upgraded version is {version}")
    print(f"  upgrade 0.1.0-1 -> 0.1.0-2: edited {CONFFILE} kept")


def run_arm64(tree):
    model = tree / MODEL.lstrip("/")
    check_info(run([*QEMU, tree / "usr/bin/cxr-edge", "info", model]), model)
    return check_reports(run([*QEMU, tree / "usr/bin/cxr-edge", "report", "--json", "--model", model,
                              *[ROOT / "samples" / s for s in SAMPLES]], env=CLEAN_ENV), model)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--amd64", required=True, type=Path)
    ap.add_argument("--arm64", required=True, type=Path)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("deb-test: needs root (dpkg installs into a chroot)")
    scores = {}
    with tempfile.TemporaryDirectory(prefix="cxr-deb-") as t:
        tmp = Path(t)
        try:
            for arch in ["amd64", "arm64"]:
                deb = getattr(args, arch).resolve()
                print(f"{arch}: {deb.name} ({deb.stat().st_size / 1e6:.1f} MB)")
                lintian(deb)
                (tmp / arch).mkdir()
                control(deb, arch, tmp / arch)
                files(deb, arch, tmp / arch / "tree")
                if arch == "amd64":
                    started = time.monotonic()
                    scores[arch] = install_amd64(deb, tmp / arch)
                    manual_route(deb, tmp / arch / "tree", tmp / arch)
                    print(f"  (install tests took {time.monotonic() - started:.0f} s)")
                else:
                    scores[arch] = run_arm64(tmp / arch / "tree")
            for sample, amd in scores["amd64"].items():
                arm = scores["arm64"][sample]
                for obs, s in amd.items():
                    check(abs(s - arm[obs]) < 1e-3, f"{sample} {obs}: amd64 {s}, arm64 {arm[obs]}")
            print("amd64 and arm64 agree on every score within 1e-3")
        except Failed as e:
            print(f"FAIL: {e}", file=sys.stderr)
            sys.exit(1)
    print("deb-test: PASS")


if __name__ == "__main__":
    main()
