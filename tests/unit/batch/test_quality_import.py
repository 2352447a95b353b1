"""Guard against the silent green run: with pyspark 4, `import great_expectations` can end the
interpreter with status 0 when pyspark[connect], pyarrow or pandas<3 are missing. A subprocess
imports GX, prints a sentinel after the import, and must fail on bad data."""

from __future__ import annotations

import subprocess
import sys

SENTINEL = "GX-IMPORTED-AND-VALIDATED"

SCRIPT = f"""
import sys
import great_expectations
print("{SENTINEL}-import", flush=True)
import pandas as pd
from batch.quality import runner, suites
bad = pd.DataFrame({{"product_id": [1, 1, None], "sku": ["a", "b", "c"], "name": ["", "", ""],
                    "category": ["c"] * 3, "brand": ["b"] * 3, "price": [1.0, -2.0, 3.0]}})
verdict = runner.validate({{"dim_product": bad}}, {{"dim_product": suites.dim_product_suite()}})
print("{SENTINEL}", len(verdict.failed()), flush=True)
sys.exit(0 if verdict.success else 3)
"""


def test_great_expectations_imports_and_fails_bad_data() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240, check=False
    )
    assert f"{SENTINEL}-import" in done.stdout, done.stderr[-3000:]
    assert SENTINEL + " " in done.stdout, done.stderr[-3000:]
    failed = int(done.stdout.split(SENTINEL + " ", 1)[1].split()[0])
    # Not-null, unique and non-negative price all fail.
    assert failed == 3
    assert done.returncode == 3


def test_suites_pass_good_data() -> None:
    import pandas as pd

    from batch.quality import runner, suites

    good = pd.DataFrame({"product_id": [1, 2], "price": [1.0, 0.0]})
    verdict = runner.validate({"dim_product": good}, {"dim_product": suites.dim_product_suite()})
    assert verdict.success, verdict.failed()
