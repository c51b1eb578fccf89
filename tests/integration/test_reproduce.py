"""Tests for dlmpaper.reproduce: papermill runs of tiny generated notebooks in a temp repo.

Each kernel start costs seconds, so one module-scoped successful run is shared and
the other runs copy its result (7 kernel starts in total).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlmpaper import reproduce
from dlmpaper.provenance import record_model
from dlmpaper.reproduce import (
    FIGURES_MANIFEST_NAME,
    INJECTED_CELL_ID,
    TIMINGS_NAME,
    NotebookFailed,
    PreflightError,
    clean_notebook,
    discover_notebooks,
    main,
)

PARAMS_SRC = 'profile = "embedded"\ndevice = "cpu"\nseed = 0'


def _params_cell():
    cell = new_code_cell(PARAMS_SRC)
    cell.metadata["tags"] = ["parameters"]
    return cell


def _write(nb_dir: Path, name: str, cells: list) -> Path:
    nb_dir.mkdir(parents=True, exist_ok=True)
    for i, cell in enumerate(cells):
        cell["id"] = f"{name[:2]}-c{i}"  # fixed ids, as in committed notebooks
    nb = new_notebook(cells=cells)
    path = nb_dir / name
    nbformat.write(nb, str(path))
    return path


FIG_CELL = (
    "import matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
    "from dlmpaper.figures.style import save_figure\n"
    "fig, ax = plt.subplots(figsize=(2, 1.5))\n"
    "ax.plot([0, 1, 2], [seed, 1, 4])\n"
    "save_figure(fig, {name!r})\n"
    "print('saved {name}')"
)


def _make_notebooks(nb_dir: Path) -> None:
    _write(
        nb_dir,
        "00_alpha.ipynb",
        [
            new_markdown_cell("# Alpha"),
            _params_cell(),
            new_code_cell(FIG_CELL.format(name="alpha_line")),
            new_code_cell(
                "import sys\n"
                "from dlmpaper.provenance import record_model\n"
                "record_model({'model_id': 'toy/embedded', 'revision': 'abc123'})\n"
                "print('took 12.3 s', file=sys.stderr)\n"
                "seed * 2"
            ),
        ],
    )
    _write(
        nb_dir,
        "01_beta.ipynb",
        [
            _params_cell(),
            new_code_cell(FIG_CELL.format(name="beta_bar")),
            # The "python3" kernel is this interpreter (the venv), not whatever python3 is on PATH.
            new_code_cell(
                f"import os, sys\nassert os.path.realpath(sys.executable) == {os.path.realpath(sys.executable)!r}"
            ),
            # Set per kernel, not through os.environ / os.chdir: the two notebooks run side by side.
            new_code_cell(
                "assert os.environ['DLMPAPER_NOTEBOOK'] == '01_beta', os.environ['DLMPAPER_NOTEBOOK']\n"
                "assert os.environ['DLMPAPER_FIGURES'].endswith('01_beta')\n"
                "assert os.path.basename(os.getcwd()) == 'notebooks', os.getcwd()"
            ),
        ],
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != TIMINGS_NAME and "dlmpaper-reproduce-" not in str(p)
    }


def _repo_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src / "notebooks", dst / "notebooks")
    shutil.copytree(src / "figures", dst / "figures")
    return dst


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    _make_notebooks(root / "notebooks")
    (root / "scratch").mkdir()
    result = reproduce.run(
        notebooks_dir=root / "notebooks",
        figures_dir=root / "figures",
        scratch_dir=root / "scratch",
        progress=False,
        jobs=2,  # side by side, whatever the machine's core count
    )
    return root, result


# ----------------------------------------------------------------------------- success path


def test_run_writes_figures_manifest_and_timings(published):
    root, result = published
    figs = root / "figures"
    assert result.notebooks == ["00_alpha", "01_beta"]
    names = sorted(p.name for p in figs.iterdir())
    assert names == [
        FIGURES_MANIFEST_NAME,
        TIMINGS_NAME,
        "alpha_line.pdf",
        "alpha_line.png",
        "beta_bar.pdf",
        "beta_bar.png",
    ]
    manifest = json.loads((figs / FIGURES_MANIFEST_NAME).read_text())
    assert manifest["figures"]["alpha_line.pdf"]["notebook"] == "00_alpha"
    assert manifest["figures"]["beta_bar.png"]["notebook"] == "01_beta"
    for name, entry in manifest["figures"].items():
        data = (figs / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
        assert entry["parameters"] == {"profile": "embedded", "device": "cpu", "seed": 0}
    assert manifest["notebooks"]["00_alpha"]["models"] == {
        "toy/embedded": {"model_id": "toy/embedded", "revision": "abc123"}
    }
    assert manifest["notebooks"]["01_beta"]["models"] == {}
    assert manifest["notebooks"]["01_beta"]["figures"] == ["beta_bar.pdf", "beta_bar.png"]
    assert manifest["run"]["profile"] == "embedded" and manifest["run"]["seed"] == 0
    assert set(reproduce.PACKAGES) <= set(manifest["run"]["versions"])
    assert "toy/embedded" in manifest["run"]["models"]
    assert "seconds" not in json.dumps(manifest)  # wall times live in TIMINGS.json only
    timings = json.loads((figs / TIMINGS_NAME).read_text())
    assert list(timings["notebooks"]) == ["00_alpha", "01_beta"] and timings["jobs"] == 2
    assert 0 < timings["wall"] and result.wall_seconds == timings["wall"]
    assert list((root / "scratch").iterdir()) == []  # scratch removed after success


def test_executed_notebooks_are_clean(published):
    root, _ = published
    text = (root / "notebooks" / "00_alpha.ipynb").read_text()
    assert text.endswith("}\n")
    for volatile in (
        "start_time",
        "end_time",
        "duration",
        "environment_variables",
        "input_path",
        "output_path",
        "iopub.",
        "dlmpaper-reproduce-",
        str(root),
    ):
        assert volatile not in text, volatile
    nb = nbformat.reads(text, as_version=4)
    # papermill's injected cell is folded into the parameters cell, whose source is unchanged
    # (the injected values are its defaults): one parameters cell, as JupyterLab users edit it.
    assert [c.id for c in nb.cells] == ["00-c0", "00-c1", "00-c2", "00-c3"]
    assert nb.cells[1].source == PARAMS_SRC and nb.cells[1].metadata.tags == ["parameters"]
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == [1, 2, 3]
    outputs = nb.cells[-1].outputs
    assert [o.output_type for o in outputs] == ["execute_result"]  # stderr stream dropped
    assert outputs[0].execution_count == 3 and outputs[0].data["text/plain"] == "0"
    assert nb.cells[2].outputs[0].text == "saved alpha_line\n"
    assert nb.metadata.kernelspec.name == "python3"
    assert "version" not in nb.metadata.language_info
    assert nb.metadata.papermill == {"parameters": {"profile": "embedded", "device": "cpu", "seed": 0}}


def test_second_run_is_byte_identical(published, tmp_path):
    root, _ = published
    repo = _repo_copy(root, tmp_path)
    before = _snapshot(repo)
    reproduce.run(  # one at a time this time: the same bytes as side by side
        notebooks_dir=repo / "notebooks", figures_dir=repo / "figures", scratch_dir=tmp_path, progress=False, jobs=1
    )
    after = _snapshot(repo)
    assert sorted(after) == sorted(before)
    for name in before:
        assert after[name] == before[name], f"{name} changed on rerun"


# ----------------------------------------------------------------------------- failure path


def test_failing_notebook_leaves_previous_state_and_names_cell(published, tmp_path, capfd):
    root, _ = published
    repo = _repo_copy(root, tmp_path / "repo")
    _write(
        repo / "notebooks",
        "02_fail.ipynb",
        [_params_cell(), new_code_cell("x = 1"), new_code_cell("y = x / 0\nprint(y)")],
    )
    _write(repo / "notebooks", "03_after.ipynb", [_params_cell(), new_code_cell(FIG_CELL.format(name="after"))])
    before = _snapshot(repo)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    # Seed 7 makes 00_alpha draw a different figure; it must not reach figures/.
    code = main(
        [
            "--notebooks",
            "00,02,03",
            "--seed",
            "7",
            "--quiet",
            "--jobs",
            "1",
            "--scratch-dir",
            str(scratch),
            "--notebooks-dir",
            str(repo / "notebooks"),
            "--figures-dir",
            str(repo / "figures"),
        ]
    )
    err = capfd.readouterr().err  # fd level: the kernels' own stderr too
    assert code == 1
    assert "without encryption" not in err  # kernels run over IPC sockets, not TCP
    assert "02_fail.ipynb" in err
    assert "cell 2" in err
    assert "y = x / 0" in err
    assert "ZeroDivisionError" in err
    assert _snapshot(repo) == before
    assert not (repo / "figures" / "after.pdf").exists()
    # The scratch run is kept for inspection: 00 ran (with seed 7), 02 failed, 03 never started.
    (kept,) = scratch.iterdir()
    assert str(kept) in err
    assert sorted(p.name for p in (kept / "notebooks").iterdir()) == ["00_alpha.ipynb", "02_fail.ipynb"]
    staged = (kept / "figures" / "alpha_line.png").read_bytes()
    assert staged != (repo / "figures" / "alpha_line.png").read_bytes()


def test_failure_stops_at_first_failing_notebook(published, tmp_path):
    root, _ = published
    repo = _repo_copy(root, tmp_path / "repo")
    _write(repo / "notebooks", "02_fail.ipynb", [_params_cell(), new_code_cell("raise RuntimeError('boom')")])
    _write(repo / "notebooks", "03_after.ipynb", [_params_cell(), new_code_cell(FIG_CELL.format(name="after"))])
    with pytest.raises(NotebookFailed) as info:
        reproduce.run(
            notebooks=["02", "03"],
            notebooks_dir=repo / "notebooks",
            figures_dir=repo / "figures",
            scratch_dir=tmp_path,
            progress=False,
            jobs=1,
        )
    failure = info.value
    assert failure.notebook == "02_fail.ipynb" and failure.cell_index == 1
    assert failure.ename == "RuntimeError" and failure.evalue == "boom"
    kept = sorted(p.name for p in (failure.scratch / "notebooks").iterdir())
    assert kept == ["02_fail.ipynb"]  # 03_after never ran
    assert not list((failure.scratch / "figures").glob("*.pdf"))


def test_failure_side_by_side_kills_the_other_kernel(published, tmp_path):
    root, _ = published
    repo = _repo_copy(root, tmp_path / "repo")
    marker = tmp_path / "slow-finished"
    _write(repo / "notebooks", "02_fail.ipynb", [_params_cell(), new_code_cell("import time\ntime.sleep(2)\n1 / 0")])
    _write(
        repo / "notebooks",
        "03_slow.ipynb",
        [
            _params_cell(),
            new_code_cell(f"import pathlib, time\ntime.sleep(120)\npathlib.Path({str(marker)!r}).touch()"),
        ],
    )
    before = _snapshot(repo)
    with pytest.raises(NotebookFailed) as info:
        reproduce.run(
            notebooks=["02", "03"],
            notebooks_dir=repo / "notebooks",
            figures_dir=repo / "figures",
            scratch_dir=tmp_path,
            progress=False,
            jobs=2,
        )
    assert info.value.notebook == "02_fail.ipynb" and info.value.ename == "ZeroDivisionError"
    assert not marker.exists()  # 03_slow was running and was killed, not waited for
    assert _snapshot(repo) == before


def test_jobs_validated_and_start_order(tmp_path):
    with pytest.raises(PreflightError, match="jobs must be a positive int"):
        reproduce.run(jobs=0, notebooks_dir=tmp_path, figures_dir=tmp_path, progress=False)
    paths = [tmp_path / f"0{i}_n.ipynb" for i in range(4)]
    assert reproduce._start_order(paths, tmp_path, 1) == paths  # one at a time: notebook order
    assert reproduce._start_order(paths, tmp_path, 2) == paths[::-1]  # no timings yet
    (tmp_path / TIMINGS_NAME).write_text(json.dumps({"notebooks": {"00_n": 5, "01_n": 50, "02_n": 1}}))
    assert [p.stem for p in reproduce._start_order(paths, tmp_path, 2)] == ["03_n", "01_n", "00_n", "02_n"]
    assert reproduce.default_jobs("cuda", 6) == 1 and 1 <= reproduce.default_jobs("cpu", 6) <= 6


# ----------------------------------------------------------------------------- preflight


def test_paper_profile_offline_exits_2_quickly_and_touches_nothing(published, tmp_path, monkeypatch, capsys):
    root, _ = published
    repo = _repo_copy(root, tmp_path)
    before = _snapshot(repo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(reproduce, "_cuda_available", lambda: False)

    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel must not start when preflight fails")

    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    code = main(
        [
            "--profile",
            "paper",
            "--notebooks-dir",
            str(repo / "notebooks"),
            "--figures-dir",
            str(repo / "figures"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "GSAI-ML/LLaDA-8B-Instruct" in err and "GAIR/lima" in err
    assert "hf auth login" in err and "huggingface-cli login" in err
    assert "GPU" in err
    assert _snapshot(repo) == before


def test_paper_profile_offline_names_only_the_hub_when_a_gpu_exists(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(reproduce, "_cuda_available", lambda: True)
    with pytest.raises(PreflightError, match="hub access") as info:
        reproduce.preflight("paper", None)
    assert "GPU" not in str(info.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(reproduce, "hub_available", lambda: True)
    assert reproduce.preflight("paper", None) == "cuda"


def test_cuda_device_without_gpu_is_a_preflight_error(monkeypatch):
    monkeypatch.setattr(reproduce, "_cuda_available", lambda: False)
    with pytest.raises(PreflightError, match="CUDA GPU"):
        reproduce.preflight("embedded", "cuda")
    assert reproduce.preflight("embedded", "auto") == "cpu"
    assert reproduce.preflight("embedded", None) == "cpu"
    with pytest.raises(PreflightError, match="unknown profile"):
        reproduce.preflight("big", None)


def test_hub_check_offline_skips_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("HF_HUB_OFFLINE=1 must answer without a request")

    import urllib.request

    from dlmpaper.lm import hub

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    for value in ("1", "true", "ON", " yes "):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert hub.offline() and hub.hub_available() is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert not hub.offline() and not hub.offline(datasets=True)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert hub.offline(datasets=True) and not hub.offline()


# ----------------------------------------------------------------------------- units


def test_discover_notebooks_numeric_order_and_selection(tmp_path):
    for name in ["10_last.ipynb", "02_mid.ipynb", "1_first.ipynb", "notes.ipynb", "03_x.txt"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in discover_notebooks(tmp_path)] == ["1_first.ipynb", "02_mid.ipynb", "10_last.ipynb"]
    assert [p.name for p in discover_notebooks(tmp_path, ["10", "2"])] == ["02_mid.ipynb", "10_last.ipynb"]
    assert [p.name for p in discover_notebooks(tmp_path, ["02_mid"])] == ["02_mid.ipynb"]
    with pytest.raises(PreflightError, match="02_mid"):
        discover_notebooks(tmp_path, ["99"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PreflightError, match="no notebooks"):
        discover_notebooks(tmp_path / "empty")


def _volatile_notebook():
    nb = new_notebook(
        cells=[
            _params_cell(),
            new_code_cell("# Parameters\nseed = 1\n"),
            new_code_cell("print(1)"),
            new_markdown_cell("An Exception was encountered"),
            new_code_cell("x"),
        ]
    )
    nb.cells[1].metadata["tags"] = ["injected-parameters"]
    nb.cells[3].metadata["tags"] = ["papermill-error-cell-tag"]
    nb.cells[4].id = nb.cells[2].id  # duplicate id
    nb.metadata["papermill"] = {
        "parameters": {"seed": 1},
        "start_time": "2025-01-01T00:00:00",
        "duration": 3.2,
        "environment_variables": {},
        "input_path": "/a",
        "output_path": "/b",
        "version": "2.7.0",
        "exception": None,
        "end_time": "x",
        "default_parameters": {},
    }
    nb.metadata["kernelspec"] = {"name": "my-env", "display_name": "Mine", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    nb.metadata["widgets"] = {"state": {}}
    for count, cell in zip([5, 9, 12, 17], [c for c in nb.cells if c.cell_type == "code"]):
        cell.execution_count = count
        cell.metadata["papermill"] = {"start_time": "t", "duration": 0.1, "status": "completed"}
        cell.metadata["execution"] = {"iopub.execute_input": "t"}
    nb.cells[2].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a"),
        nbformat.v4.new_output("stream", name="stderr", text="100%|##| 3/3 [00:01<00:00, 2.5it/s]"),
        nbformat.v4.new_output("stream", name="stdout", text="b\n"),
        nbformat.v4.new_output(
            "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "r"}, "text/plain": "bar"}
        ),
    ]
    nb.cells[4].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=17)]
    return nb


def test_clean_notebook_strips_volatile_fields():
    nb = _volatile_notebook()
    clean = clean_notebook(nb)
    assert nb.metadata["papermill"]["duration"] == 3.2  # input not modified
    assert clean.metadata.papermill == {"parameters": {"seed": 1}}
    assert "widgets" not in clean.metadata
    assert clean.metadata.kernelspec == {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    assert clean.metadata.language_info == {"name": "python"}
    assert len(clean.cells) == 3  # error marker removed, injected cell folded into the parameters cell
    assert clean.cells[0].source == PARAMS_SRC.replace("seed = 0", "seed = 1")
    ids = [c.id for c in clean.cells]
    assert INJECTED_CELL_ID not in ids and len(set(ids)) == 3 and ids[2] == "cell-2"
    code = [c for c in clean.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3]
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in code)
    assert [dict(o) for o in code[1].outputs] == [{"output_type": "stream", "name": "stdout", "text": "ab\n"}]
    assert code[2].outputs[0].execution_count == 3
    assert clean_notebook(clean) == clean  # idempotent
    kept = clean_notebook(nb, keep_stderr=True)
    assert [o.name for o in kept.cells[1].outputs] == ["stdout", "stderr", "stdout"]
    nbformat.validate(clean)


def test_fold_keeps_defaults_byte_for_byte_and_writes_other_values():
    source = (
        'profile = "embedded"  # "embedded" or "paper" · comment\ndevice = "cpu"\nseed = 0\n'
        "n = 4\nm = n * 2  # reads n\nblocks = [16,\n          None]  # None: one block\n"
    )
    nb = new_notebook(cells=[_params_cell(), new_code_cell("# Parameters\nseed = 0\n"), new_code_cell("print(seed)")])
    nb.cells[0].source = source
    nb.cells[1].metadata["tags"] = [INJECTED_CELL_ID]
    nb.metadata["papermill"] = {"parameters": {"profile": "embedded", "device": "cpu", "seed": 0}}
    folded = clean_notebook(nb)
    assert [c.source for c in folded.cells] == [source, "print(seed)"]

    nb.metadata["papermill"] = {"parameters": {"profile": "paper", "seed": 7, "n": 8, "blocks": [4], "extra": None}}
    params = clean_notebook(nb).cells[0].source
    namespace: dict = {}
    exec(params, namespace)  # what the folded cell computes equals papermill's injection after the cell
    assert {k: namespace[k] for k in ("profile", "device", "seed", "n", "m", "blocks", "extra")} == {
        "profile": "paper",
        "device": "cpu",
        "seed": 7,
        "n": 8,
        "m": 8,
        "blocks": [4],
        "extra": None,
    }
    assert params.splitlines()[0] == 'profile = "paper"  # "embedded" or "paper" · comment'  # comment kept
    assert params.splitlines()[-2:] == ["n = 8", "extra = None"]  # n is read below its line: set after the cell


def test_kernels_use_ipc_sockets_in_the_scratch_folder(tmp_path):
    config = reproduce._kernel_config(tmp_path)
    if os.name != "posix":
        pytest.skip("TCP where there are no Unix sockets")
    assert config.KernelManager.transport == "ipc"
    assert Path(config.KernelManager.ip).parent == tmp_path / "ipc"
    long = reproduce._kernel_config(tmp_path / ("x" * 120)).KernelManager  # too long for a socket path
    assert long.transport == "ipc" and len(long.ip) < 100 and Path(long.ip).parent.is_dir()


def test_numerics_env_pins_threads_and_keeps_user_settings(monkeypatch):
    env = reproduce.numerics_env({"OMP_NUM_THREADS": "4"})
    assert env["OMP_NUM_THREADS"] == "4" and env["MKL_NUM_THREADS"] == "1"
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert reproduce.numerics_env({})["ATEN_CPU_CAPABILITY"] == "avx2"
    assert reproduce.numerics_env({})["OPENBLAS_CORETYPE"] == "Haswell"
    monkeypatch.setattr("platform.machine", lambda: "arm64")
    assert "ATEN_CPU_CAPABILITY" not in reproduce.numerics_env({})


def test_source_cell_index_accounts_for_injected_cell():
    source = new_notebook(cells=[new_markdown_cell("m"), _params_cell(), new_code_cell("a = 1"), new_code_cell("1/0")])

    class Err:
        cell_index = 4  # executed notebook: md, params, injected, a = 1, 1/0
        source = "1/0"

    assert reproduce._source_cell_index(source, Err()) == 3
    Err.cell_index = 1
    Err.source = PARAMS_SRC
    assert reproduce._source_cell_index(source, Err()) == 1


def test_record_model(tmp_path, monkeypatch):
    monkeypatch.delenv("DLMPAPER_NOTEBOOK", raising=False)
    assert record_model({"model_id": "x"}) is None
    with pytest.raises(ValueError, match="model_id"):
        record_model({"revision": "abc"})
    with pytest.raises(TypeError):
        record_model({"model_id": "x", "bad": object()})
    monkeypatch.setenv("DLMPAPER_NOTEBOOK", "03_positional_probe")
    monkeypatch.setenv("DLMPAPER_FIGURES", str(tmp_path))
    record_model({"model_id": "a", "revision": "1"})
    record_model({"model_id": "b", "revision": "2"})
    record_model({"model_id": "a", "revision": "3"})
    data = json.loads((tmp_path / ".models" / "03_positional_probe.json").read_text())
    assert data == {"a": {"model_id": "a", "revision": "3"}, "b": {"model_id": "b", "revision": "2"}}


def test_subset_manifest_merges_and_stale_figures_are_removed(tmp_path):
    figs, stage = tmp_path / "figs", tmp_path / "stage"
    figs.mkdir()
    stage.mkdir()
    params = {"profile": "embedded", "device": "cpu", "seed": 0}
    old = {
        "format": 1,
        "run": {},
        "notebooks": {
            "00_a": {"parameters": params, "figures": ["a.pdf"], "models": {}},
            "01_b": {"parameters": params, "figures": ["old_b.pdf"], "models": {}},
        },
        "figures": {"a.pdf": {"notebook": "00_a"}, "old_b.pdf": {"notebook": "01_b"}},
    }
    (figs / FIGURES_MANIFEST_NAME).write_text(json.dumps(old))
    (figs / "a.pdf").write_bytes(b"A")
    (figs / "old_b.pdf").write_bytes(b"OLD")
    (stage / "new_b.pdf").write_bytes(b"NEW")
    selected = [Path("01_b.ipynb")]
    manifest = reproduce._build_manifest(figs, stage, {"new_b.pdf": "01_b"}, selected, params, full_run=False)
    assert set(manifest["figures"]) == {"a.pdf", "new_b.pdf"}  # 00_a kept, 01_b replaced
    assert manifest["notebooks"]["01_b"]["figures"] == ["new_b.pdf"]
    reproduce._publish(figs, stage, {"new_b.pdf": "01_b"}, manifest, {"notebooks": {"01_b": 1.0}}, full_run=False)
    assert sorted(p.name for p in figs.iterdir()) == [FIGURES_MANIFEST_NAME, TIMINGS_NAME, "a.pdf", "new_b.pdf"]
    assert (figs / "new_b.pdf").read_bytes() == b"NEW"


# ----------------------------------------------------------------------------- nbval sanitizers


SANITIZE_CASES = [
    ("100%|██████████| 10/10 [00:01<00:00,  9.50it/s]", "PROGRESS-BAR"),
    ("sampling:  45%|####5     | 45/100 [00:03<00:04, 12.1it/s]\ndone", "PROGRESS-BAR\ndone"),
    ("elapsed [00:12<00:30, 2.00s/it]", "elapsed [ELAPSED]"),
    ("throughput 35.2 tok/s", "throughput RATE"),
    ("one pass took 12.3 s", "one pass took DURATION"),
    ("decoded in 250ms (2 steps)", "decoded in DURATION (2 steps)"),
    ("run at 2025-12-29T10:11:12.123456", "run at TIMESTAMP"),
    ("<Adapter object at 0x7f3a2b1c4d90>", "<Adapter object at 0xADDRESS>"),
    ("tensor([1.], device='cuda:0')", "tensor([1.], device='DEVICE')"),
    ("device(type='cuda', index=0)", "device(DEVICE)"),
    ("running on cpu with cpu_count=2", "running on DEVICE with cpu_count=2"),
    ("saved /home/ann/dlmpaper/figures/probe_top3.pdf", "saved REPO/figures/probe_top3.pdf"),
    ("'/work/main/data/prompts/lima.jsonl'", "'REPO/data/prompts/lima.jsonl'"),
    ("/home/ann/dlmpaper/dlmpaper/probe.py:12: UserWarning", "REPO/dlmpaper/probe.py:12: UserWarning"),
    ("/opt/venv/lib/python3.11/site-packages/torch/nn.py", "SITE-PACKAGES/torch/nn.py"),
    ("wrote /tmp/dlmpaper-reproduce-x1/figures/a.pdf ok", "wrote TMP-PATH ok"),
    ("The answer is 42 cells.", "The answer is 42 cells."),
]


@pytest.mark.parametrize("text, expected", SANITIZE_CASES)
def test_nbval_sanitizers(text, expected):
    import re

    from nbval.plugin import get_sanitize_patterns

    cfg = (Path(__file__).resolve().parents[1] / "nbval_sanitize.cfg").read_text(encoding="utf-8")
    patterns = get_sanitize_patterns(cfg)
    assert len(patterns) >= 10
    for regex, replace in patterns:  # nbval applies them in file order with re.sub
        text = re.sub(regex, replace, text)
    assert text == expected
