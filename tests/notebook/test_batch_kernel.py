"""--via batch in a real Jupyter kernel: the cell returns once submitted, and a killed kernel loses nothing."""

from __future__ import annotations

import pytest

from nbtools.sim import serve
from tests.support.kernel_helpers import Kernel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]  # real kernels

CELL = "%%llm_batch --via batch -m sim-small --poll-interval 0.1 --base-url {url} -o job {flags}\nfirst\nsecond\nthird\n"


def test_a_killed_kernel_loses_nothing_and_the_same_cell_reattaches(tmp_path) -> None:
    env = {"NBTOOLS_CACHE": str(tmp_path / "replies.sqlite")}
    with serve(batch_delay=4.0, reply="echo") as server:
        first = Kernel(env=env)
        try:
            first.ok("%load_ext nbtools")
            ex = first.run(CELL.format(url=server.base_url, flags=""), timeout=20).check_ok()
            assert "submitted" in ex.stdout
            assert first.value("[job.done, job.batch_run.jobs[0].status in ('validating', 'in_progress')]") == [False, True]
        finally:
            first.km.shutdown_kernel(now=True)  # killed mid-job: no cleanup runs
            first.shutdown()
        assert server.batch_stats()["jobs"] == 1

        second = Kernel(env=env)
        try:
            second.ok("%load_ext nbtools")
            second.run(CELL.format(url=server.base_url, flags="--wait"), timeout=30).check_ok()
            assert second.value("[job.texts, job.batch_run.reattached]") == [["first", "second", "third"], 1]
            listing = second.ok("print(repr(nbtools.jobs()) if 'nbtools' in dir() else repr(__import__('nbtools').jobs()))")
            assert "completed" in listing.stdout and "3/3" in listing.stdout
        finally:
            second.shutdown()
        assert server.batch_stats()["jobs"] == 1  # the second kernel paid for nothing
