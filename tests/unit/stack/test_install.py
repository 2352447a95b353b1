"""What `install` reports about Maven's downloads."""

from __future__ import annotations

from headwater.stack import install

MAVEN_OUTPUT = """\
[INFO] Scanning for projects...
Downloading from central: https://repo/m2/k.pom
Downloaded from central: https://repo/m2/k.pom (1.9 kB at 21 kB/s)
[INFO] Downloaded from central: https://repo/m2/k.jar (2.1 MB at 9.0 MB/s)
Downloaded from central: https://repo/maven2/x/y/1/y-1.pom (512 B at 3 kB/s)
[INFO] BUILD SUCCESS
"""


def test_maven_downloads_counts_files_and_bytes() -> None:
    assert install.maven_downloads(MAVEN_OUTPUT) == (3, 1900 + 2_100_000 + 512)
    assert install.maven_downloads("[INFO] BUILD SUCCESS\n") == (0, 0)


def test_fetch_outcome_separates_local_copies_from_downloads() -> None:
    assert install.fetch_outcome("copied", 0, 0) == ("copied", "from the local Maven repository")
    outcome, note = install.fetch_outcome("copied", 3, 2_500_000)
    assert outcome == "downloaded" and "3 files, 2.5 MB" in note


def test_pom_files_ship_with_the_package() -> None:
    for pom in ("kafka-pom.xml", "debezium-pom.xml"):
        text = (install.POM_DIR / pom).read_text()
        assert "<artifactId>" in text and "${" in text
