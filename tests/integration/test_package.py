"""The installed layout and the Debian package (issue 14, item 5;
docs/operations.md): `cmake --install` into a scratch root, `cpack -G DEB`,
the package unpacked with dpkg-deb into a scratch root (no root needed), its
files, control data and maintainer scripts checked, the unpacked binary run,
and the unit checked by `systemd-analyze verify` (systemd is a test dependency)."""

import os
import shutil
import stat
import subprocess
import tempfile
import unittest
from pathlib import Path

from usher_harness import USHER_BIN

BUILD_DIR = Path(USHER_BIN).resolve().parent
PACKAGE_TIMEOUT = 300


def run(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, timeout=PACKAGE_TIMEOUT, **kw)


def unit_settings(text):
    """The unit's KEY=value lines as {key: [values]}."""
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        settings.setdefault(key, []).append(value)
    return settings


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not (BUILD_DIR / "CPackConfig.cmake").exists():
            raise unittest.SkipTest(f"{BUILD_DIR} has no CPackConfig.cmake")
        for tool in ("cpack", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} is not installed (scripts/install-deps.sh)")
        cls.scratch = Path(tempfile.mkdtemp(prefix="usher-package-"))
        result = run(["cpack", "-G", "DEB", "--config", str(BUILD_DIR / "CPackConfig.cmake"),
                      "-B", str(cls.scratch / "out")], cwd=BUILD_DIR)
        if result.returncode != 0:
            shutil.rmtree(cls.scratch, ignore_errors=True)
            raise AssertionError(f"cpack failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")
        debs = sorted((cls.scratch / "out").glob("usher_*.deb"))
        assert len(debs) == 1, debs
        cls.deb = debs[0]
        cls.root = cls.scratch / "root"
        extracted = run(["dpkg-deb", "-x", str(cls.deb), str(cls.root)])
        assert extracted.returncode == 0, extracted.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.scratch, ignore_errors=True)

    def unit_text(self):
        return (self.root / "usr/lib/systemd/system/usher.service").read_text()

    def test_package_holds_the_binary_unit_settings_and_docs(self):
        binary = self.root / "usr/bin/usher"
        self.assertTrue(binary.is_file())
        self.assertTrue(os.stat(binary).st_mode & stat.S_IXUSR)
        env_file = self.root / "etc/usher/usher.env"
        self.assertTrue(env_file.is_file())
        # The settings file may hold secrets: not world-readable.
        self.assertEqual(os.stat(env_file).st_mode & 0o007, 0)
        self.assertTrue((self.root / "usr/share/doc/usher/operations.md").is_file())
        self.assertTrue((self.root / "usr/share/doc/usher/metrics.md").is_file())
        self.assertTrue((self.root / "usr/share/doc/usher/prometheus/usher-rules.yml").is_file())
        version = run([str(binary), "version"])
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertTrue(version.stdout.startswith("usher "), version.stdout)

    def test_unit_is_a_hardened_notify_service(self):
        settings = unit_settings(self.unit_text())
        expected = {
            "Type": "notify", "ExecStart": "/usr/bin/usher serve", "Restart": "on-failure",
            "User": "usher", "StateDirectory": "usher", "ProtectSystem": "strict",
            "NoNewPrivileges": "true", "PrivateTmp": "true",
            "EnvironmentFile": "-/etc/usher/usher.env",
        }
        for key, value in expected.items():
            self.assertEqual(settings.get(key), [value], key)
        self.assertIn("DATABASE_URL=sqlite:/var/lib/usher/usher.db", settings["Environment"])

    def test_control_data_conffiles_and_maintainer_scripts(self):
        info = run(["dpkg-deb", "-f", str(self.deb), "Package", "Depends"])
        self.assertEqual(info.returncode, 0, info.stderr)
        self.assertIn("Package: usher", info.stdout)
        # dpkg-shlibdeps found the shared libraries' packages.
        for dependency in ("adduser", "libsoci-sqlite3", "libsodium", "libhiredis"):
            self.assertIn(dependency, info.stdout)
        # Loaded with dlopen (util/curl_library.hpp, store/postgres_library.hpp):
        # named by hand, not found.
        for dependency in ("libcurl4 (>= 7.84)", "libsoci-postgresql4.0", "libpq5"):
            self.assertIn(dependency, info.stdout)
        control = self.scratch / "control"
        run(["dpkg-deb", "-e", str(self.deb), str(control)])
        self.assertEqual((control / "conffiles").read_text().split(), ["/etc/usher/usher.env"])
        postinst = (control / "postinst").read_text()
        self.assertIn("adduser --system", postinst)
        self.assertTrue(os.stat(control / "postinst").st_mode & stat.S_IXUSR)
        syntax = run(["sh", "-n", str(control / "postinst")])
        self.assertEqual(syntax.returncode, 0, syntax.stderr)

    def test_systemd_analyze_accepts_the_unit(self):
        # Not skipped when missing: scripts/install-deps.sh installs systemd,
        # and CI must not pass without this check.
        self.assertIsNotNone(shutil.which("systemd-analyze"),
                             "systemd-analyze is not installed: run scripts/install-deps.sh "
                             "(the systemd package)")
        # --root: the unit and ExecStart= are resolved in the unpacked package,
        # where /usr/bin/usher exists; the targets it names come from the host.
        units = self.root / "usr/lib/systemd/system"
        for host_units in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
            for unit in list(host_units.glob("*.target")) + list(host_units.glob("*.slice")):
                if not (units / unit.name).exists() and unit.is_file():
                    shutil.copy(unit, units / unit.name)
        result = run(["systemd-analyze", "verify", f"--root={self.root}", "usher.service"])
        output = (result.stdout + result.stderr).strip()
        # It reports problems (an unknown key, a bad value) as lines naming
        # the unit, and still exits 0.
        self.assertEqual(result.returncode, 0, output)
        self.assertNotIn("usher.service", output)


class InstallTest(unittest.TestCase):
    def test_cmake_install_lays_out_the_tree_under_its_prefix(self):
        if not (BUILD_DIR / "cmake_install.cmake").exists():
            self.skipTest(f"{BUILD_DIR} is not a CMake build directory")
        destdir = Path(tempfile.mkdtemp(prefix="usher-install-"))
        self.addCleanup(shutil.rmtree, destdir, True)
        result = run(["cmake", "--install", str(BUILD_DIR), "--prefix", "/opt/usher"],
                     env={**os.environ, "DESTDIR": str(destdir)})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertTrue((destdir / "opt/usher/bin/usher").is_file())
        self.assertTrue((destdir / "etc/usher/usher.env").is_file())
        unit = (destdir / "opt/usher/lib/systemd/system/usher.service").read_text()
        # The unit runs the binary where this prefix put it.
        self.assertEqual(unit_settings(unit)["ExecStart"], ["/opt/usher/bin/usher serve"])


if __name__ == "__main__":
    unittest.main()
