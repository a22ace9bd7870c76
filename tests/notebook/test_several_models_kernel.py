"""Several models in a real Jupyter kernel: --via batch returns once every model's job is submitted, then
fills in the background; a blocking cell shows the grid; --dry-run gives a cost line per model."""

from __future__ import annotations

import pytest

from nbtools.sim import serve
from tests.support.kernel_helpers import Kernel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]  # a real kernel

MODELS = "-m sim-mini,sim-pro"


def test_several_models_in_a_kernel(tmp_path) -> None:
    with serve(batch_delay=1.0, latency=0.05, latency_spread=0.0) as server:
        kernel = Kernel(env={"NBTOOLS_CACHE": str(tmp_path / "replies.sqlite")})
        try:
            kernel.ok("%load_ext nbtools")
            ex = kernel.run(f"%%llm_batch --via batch {MODELS} --poll-interval 0.1 --base-url {server.base_url} -o jobs\n"
                            "What is 2 + 2?\nWhat is 3 + 5?\n", timeout=20).check_ok()
            assert "submitted" in ex.stdout
            assert kernel.value("jobs.done") is False
            assert server.batch_stats()["jobs"] == 2  # one job per model, both submitted before the cell returned
            kernel.ok("await jobs")
            assert kernel.value("[len(jobs), [p.batch_run.jobs[0].status for p in jobs.by_model.values()]]") == [
                4, ["completed", "completed"]]

            ex = kernel.run(f"%%llm_batch {MODELS} --base-url {server.base_url} -o side\nWhat is 2 + 2?\n", timeout=30)
            ex.check_ok()
            html = "".join(m["content"]["data"].get("text/html", "") for m in ex.of_type("display_data", "update_display_data"))
            assert "nbt-grid" in html and "nbt-models" in html and "timeline by model" in html
            assert kernel.value("side.wide().shape") == [1, 3]

            ex = kernel.run(f"%%llm_batch {MODELS} --base-url {server.base_url} --dry-run --max-tokens 20\nhello\n").check_ok()
            text = "".join(m["content"]["data"].get("text/plain", "") for m in ex.of_type("display_data"))
            assert "sim-mini: 1 requests" in text and "sim-pro: 1 requests" in text
        finally:
            kernel.shutdown()
