"""The image benchmarks on the files their users really have (tests/fixtures/released/).

Each file there is cut from the released data (README.md names repo@commit); the expected
values under expected/ are the outputs of the reference scripts themselves (POPE evaluate.py,
LLaVA eval_pope.py / eval_science_qa.py / convert_vizwiz_for_submission.py / m4c_evaluator.py,
MME eval_tool calculation.py), run offline on these files. Images are placeholders with the
released file names, written here.
"""

import json
import random
import re
import shutil
from pathlib import Path

import pytest
from conftest import read_benchmark
from PIL import Image

from eval.api import ScoringContext, ScoringError
from eval.metrics import mme as mme_metric
from eval.metrics import pope as pope_metric
from eval.metrics import scienceqa as sqa_metric
from eval.metrics import vizwiz as vizwiz_metric
from eval.scoring import evaluate
from pipeline.benchmarks import llava_bench, mme, scienceqa, vizwiz
from pipeline.schema import to_table

RELEASED = Path(__file__).parent / "fixtures" / "released"
EXPECTED = RELEASED / "expected"


def jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def placeholders(folder: Path, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (90, 90, 90)).save(folder / name)


def table_of(samples, texts):
    """A generations table answering each sample with `texts[sample_id]` (None: an error row)."""
    rows = []
    for sample in samples:
        text = texts[sample.sample_id]
        rows.append({**sample.to_row(), "run_id": "r", "model": "m", "method": "greedy",
                     "output_text": text, "error": None if text is not None else "boom"})
    random.Random(0).shuffle(rows)  # Parquet parts come back in any order
    return to_table(rows)


def parse_pope_report(text):
    """The numbers POPE's evaluate.py / LLaVA's eval_pope.py print, per category."""
    blocks = re.split(r"Category: (\w+), # samples: \d+\n", text)
    chunks = dict(zip(blocks[1::2], blocks[2::2])) if len(blocks) > 1 else {"": text}
    parsed = {}
    for category, chunk in chunks.items():
        tp, fp, tn, fn = map(int, chunk.split("\n")[1].split("\t"))
        values = dict(re.findall(r"^(Accuracy|Precision|Recall|F1 score|Yes ratio): (\S+)$", chunk, re.M))
        parsed[category] = {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "accuracy": float(values["Accuracy"]),
                            "precision": float(values["Precision"]), "recall": float(values["Recall"]),
                            "f1": float(values["F1 score"]), "yes_ratio": float(values["Yes ratio"])}
    return parsed


def assert_same_scores(ours, reference):
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


# ---------------------------------------------------------------- POPE


@pytest.fixture
def llava_pope(tmp_path):
    """LLaVA-1.5's playground/data/eval/pope: coco/coco_pope_*.json beside val2014/."""
    root = tmp_path / "pope"
    shutil.copytree(RELEASED / "pope", root)
    names = {q["image"] for q in jsonl(root / "llava_pope_test.jsonl")}
    placeholders(root / "val2014", sorted(names))
    return root


@pytest.mark.parametrize("split", ["random", "popular", "adversarial"])
def test_pope_reads_llava_bundle_layout_with_llava_prompts(llava_pope, split):
    samples = read_benchmark("pope", llava_pope, subset=split)
    llava = [q for q in jsonl(llava_pope / "llava_pope_test.jsonl") if q["category"] == split]
    assert len(samples) == len(llava) == 12
    for sample, question in zip(samples, llava, strict=True):
        assert sample.error is None
        assert sample.prompt == question["text"]  # LLaVA's own question file, prompt included
        assert sample.image_path == str((llava_pope / "val2014" / question["image"]).resolve())


@pytest.mark.parametrize("dataset, images", [("gqa", "gqa/images"), ("aokvqa", "val2014")])
def test_pope_reads_seem_json_arrays(tmp_path, dataset, images):
    root = tmp_path / "output"
    shutil.copytree(RELEASED / "pope_seem", root / "seem")  # POPE's output/seem/<dataset>/ layout
    released = json.loads((root / "seem" / dataset / f"{dataset}_pope_seem_popular.json").read_text())
    placeholders(root / images, sorted({q["image"] for q in released}))
    samples = read_benchmark("pope", root, subset=f"{dataset}_popular")
    assert [s.metadata for s in samples] == [{"question_id": q["question_id"], "label": q["label"]} for q in released]
    assert all(s.error is None and Path(s.image_path).is_file() for s in samples)


def test_pope_array_entry_errors_name_the_entry(tmp_path):
    root = tmp_path / "pope"
    released = json.loads((RELEASED / "pope_seem/gqa/gqa_pope_seem_random.json").read_text())
    (root / "images").mkdir(parents=True)
    (root / "gqa_pope_seem_random.json").write_text(json.dumps([released[0], [1], {**released[1], "label": "?"}]))
    errors = [s.error for s in read_benchmark("pope", root, subset="gqa_random")]
    assert errors == [None, "gqa_pope_seem_random.json entry 2: expected a JSON object",
                      "gqa_pope_seem_random.json entry 3: label '?' is not 'yes' or 'no'"]


def test_score_pope_llava_bundle_equals_eval_pope(llava_pope, tmp_path, capsys):
    from jobs.cli import main

    out = tmp_path / "pope.json"
    assert main(["score", "pope", "--annotation-dir", str(llava_pope / "coco"), "--questions",
                 str(llava_pope / "llava_pope_test.jsonl"), "--answers",
                 str(llava_pope / "answers/llava-v1.5-13b.jsonl"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    reference = parse_pope_report((EXPECTED / "eval_pope.txt").read_text())
    assert set(result["categories"]) == set(reference)
    for category, scores in reference.items():
        assert_same_scores(result["categories"][category], scores)
    assert result["mean"]["f1"] == pytest.approx(sum(s["f1"] for s in reference.values()) / 3)


@pytest.mark.parametrize("answers, expected", [
    ("pope_format_answers_random.jsonl", "pope_evaluate_random.txt"),
    ("pope_format_answers_crafted.jsonl", "pope_evaluate_crafted.txt"),
])
def test_score_pope_popes_own_answer_file_equals_evaluate_py(answers, expected):
    result = pope_metric.score_files(RELEASED / "pope/coco/coco_pope_random.json", RELEASED / "pope" / answers)
    assert_same_scores(result, parse_pope_report((EXPECTED / expected).read_text())[""])


def test_score_pope_refuses_what_the_references_mis_pair(llava_pope, tmp_path, capsys):
    from jobs.cli import main

    short = tmp_path / "short.jsonl"
    short.write_text("".join(line + "\n" for line in (llava_pope / "pope_format_answers_random.jsonl")
                             .read_text().splitlines()[:-1]))
    with pytest.raises(ScoringError, match=r"short.jsonl: 11 answers for 12 questions"):
        pope_metric.score_files(llava_pope / "coco/coco_pope_random.json", short)
    swapped = jsonl(llava_pope / "answers/llava-v1.5-13b.jsonl")
    swapped[0], swapped[1] = swapped[1], swapped[0]
    (tmp_path / "swapped.jsonl").write_text("".join(json.dumps(a) + "\n" for a in swapped))
    with pytest.raises(ScoringError, match=r"coco_pope_adversarial.json: line 1 asks 'Is there a snowboard"):
        pope_metric.score_llava_bundle(llava_pope / "coco", llava_pope / "llava_pope_test.jsonl",
                                       tmp_path / "swapped.jsonl")
    code = main(["score", "pope", "--questions", str(llava_pope / "coco/coco_pope_random.json"),
                 "--answers", str(llava_pope / "coco/coco_pope_popular.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "is a POPE question file, not answers" in err


# ---------------------------------------------------------------- MME


@pytest.fixture
def llava_mme(tmp_path):
    """LLaVA-1.5's playground/data/eval/MME: MME_Benchmark_release_version/ (and eval_tool/)."""
    root = tmp_path / "MME"
    shutil.copytree(RELEASED / "mme", root)
    placeholders(root / "MME_Benchmark_release_version", (root / "images.txt").read_text().split())
    return root


def test_mme_prompts_are_llava_15s(llava_mme):
    samples = read_benchmark("mme", llava_mme)
    assert len(samples) == 14 * 2 * 2 and all(s.error is None for s in samples)
    ours = sorted((s.metadata["task"], s.metadata["image"], s.prompt) for s in samples)
    llava = sorted((q["category"], Path(q["image"]).name, q["text"]) for q in jsonl(llava_mme / "llava_mme.jsonl"))
    assert ours == llava
    assert any("  Please answer" in s.metadata["question"] for s in samples)  # the release's double space


def test_mme_export_scores_as_calculation_py(llava_mme, tmp_path):
    samples = read_benchmark("mme", llava_mme)
    answers = {(a["question_id"].split("/")[0], Path(a["question_id"]).name, a["prompt"]): a["text"]
               for a in jsonl(llava_mme / "answers/llava-v1.5-13b.jsonl")}
    texts = {s.sample_id: answers[s.metadata["task"], s.metadata["image"], s.prompt] for s in samples}
    written = mme.write_eval_tool_results(table_of(samples, texts), tmp_path / "results")
    reference_dir = EXPECTED / "mme_eval_tool_llava-v1.5-13b"  # what LLaVA's convert_answer_to_mme.py wrote
    for path in written:
        ours = sorted(line.split("\t")[1:] for line in path.read_text().splitlines())
        theirs = sorted(line.split("\t")[1:] for line in (reference_dir / path.name).read_text().splitlines())
        assert ours == theirs, path.name  # question, gt, response; column 1 is LLaVA's "<stem>.txt"
    report = (EXPECTED / "mme_calculation.txt").read_text()
    reference = {task: float(score) for task, score in re.findall(r"\t (\w+)  score: (\S+)", report)}
    totals = [float(x) for x in re.findall(r"total score: (\S+)", report)]
    for result in (mme_metric.score_tasks(mme_metric.read_results(tmp_path / "results")),
                   mme_metric.score_tasks(mme_metric.read_results(reference_dir))):
        assert {task: scores["score"] for task, scores in result["tasks"].items()} == pytest.approx(reference)
        assert [result["perception"], result["cognition"]] == pytest.approx(totals)


# ---------------------------------------------------------------- ScienceQA


@pytest.fixture
def sqa_root(tmp_path):
    root = tmp_path / "scienceqa"
    shutil.copytree(RELEASED / "scienceqa", root)
    problems = json.loads((root / "problems.json").read_text())
    placeholders(root / "images" / "test", [f"{pid}/image.png" for pid, p in problems.items() if p["image"]])
    return root


def expected_sqa(name):
    stdout = (EXPECTED / f"sqa_{name}stdout.txt").read_text()
    total, correct, _, img = re.findall(r"[\d.]+", stdout)[:4]
    return json.loads((EXPECTED / f"sqa_{name}result.json").read_text()), float(img) / 100


@pytest.mark.parametrize("answers, name", [("llava-v1.5-13b.jsonl", ""), ("crafted.jsonl", "crafted_")])
def test_score_scienceqa_equals_eval_science_qa(sqa_root, answers, name):
    result = sqa_metric.score_files(sqa_root, sqa_root / "answers" / answers)
    reference, img_accuracy = expected_sqa(name)
    assert result["accuracy"] == pytest.approx(reference["acc"] / 100)
    assert (result["correct"], result["count"]) == (reference["correct"], reference["count"])
    assert result["results"] == reference["results"]
    assert round(result["img_accuracy"] * 100, 2) == img_accuracy * 100
    analysis = json.loads((EXPECTED / f"sqa_{name}output.json").read_text())
    theirs = {a["question_id"]: a for a in analysis["correct"] + analysis["incorrect"]}
    for item in result["per_item"]:
        for key in ("parsed_ans", "ground_truth", "pred", "is_multimodal"):
            assert item[key] == theirs[item["question_id"]][key], (item["question_id"], key)


def test_scienceqa_reads_images_layout_and_exports_what_llava_wrote(sqa_root, tmp_path):
    samples = read_benchmark("scienceqa", sqa_root)
    llava = {a["question_id"]: a for a in jsonl(sqa_root / "answers/llava-v1.5-13b.jsonl")}
    assert [s.metadata["pid"] for s in samples] == ["5", "11", "23"]  # the split's image problems
    assert all(Path(s.image_path) == sqa_root / "images/test" / s.metadata["pid"] / "image.png" for s in samples)
    texts = {s.sample_id: " " + llava[s.metadata["pid"]]["text"] + "\n" for s in samples}
    path = scienceqa.write_answers(table_of(samples, texts), tmp_path / "answers.jsonl")
    exported = {a["question_id"]: a for a in jsonl(path)}
    for pid, line in exported.items():  # the lines LLaVA's model_vqa_science.py wrote, field by field
        assert line == {key: llava[pid][key] for key in ("question_id", "prompt", "text")}
    result = sqa_metric.score_files(sqa_root, path)
    assert result["img_count"] == 3 and result["img_accuracy"] == pytest.approx(1 / 3)


# ---------------------------------------------------------------- VizWiz


def test_vizwiz_test_prompts_and_submission_equal_llavas(tmp_path):
    root = tmp_path / "vizwiz"
    shutil.copytree(RELEASED / "vizwiz", root)
    questions = jsonl(root / "llava_test.jsonl")
    placeholders(root / "test", [q["image"] for q in questions])
    samples = read_benchmark("vizwiz", root, subset="test")
    assert [s.prompt for s in samples] == [q["text"] for q in questions]
    answers = {a["question_id"]: a["text"] for a in jsonl(root / "answers/llava-v1.5-13b.jsonl")}
    texts = {s.sample_id: answers[q["question_id"]] for s, q in zip(samples, questions, strict=True)}
    path = vizwiz.write_submission(table_of(samples, texts), tmp_path / "upload.json")
    published = json.loads((root / "answers_upload/llava-v1.5-13b.json").read_text())
    assert json.loads(path.read_text()) == published == json.loads((EXPECTED / "vizwiz_upload.json").read_text())


@pytest.mark.parametrize("text, normalized", [
    ("Sesame Street: Animal Zoo (Sesame Street Beginnings)", "sesame street: animal zoo sesame street beginnings"),
    ("08/13/2011", "08 13 2011"), ("A Fine, Fine School", "fine fine school"), ("Macy's", "macy 's"),
    ("Two dogs.", "2 dogs"), ("dont know", "don't know"), ("3.5 cm", "3.5 cm"), ("1,000", "1000"),
    ("." * 40, "." * 8),  # at most 32 periods go (the reference passes re.UNICODE as the count)
])
def test_evalai_answer_processor(text, normalized):
    assert vizwiz_metric.normalize_answer(text) == normalized


def test_vizwiz_val_accuracy_equals_m4c_evaluator(tmp_path):
    expected = json.loads((EXPECTED / "vizwiz_val_m4c.json").read_text())
    annotations = RELEASED / "vizwiz/Annotations/val.json"
    result = vizwiz_metric.score_files(annotations, RELEASED / "vizwiz/answers/val_crafted.jsonl")
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    assert [item["accuracy"] for item in result["per_item"]] == pytest.approx(expected["per_item"])
    # the run path: the reader's metadata keeps all 10 answers; the submission file scores the same
    root = tmp_path / "vizwiz"
    shutil.copytree(RELEASED / "vizwiz", root)
    items = json.loads(annotations.read_text())
    placeholders(root / "val", [item["image"] for item in items])
    samples = read_benchmark("vizwiz", root)
    texts = {s.sample_id: a["text"] for s, a in zip(samples, jsonl(root / "answers/val_crafted.jsonl"), strict=True)}
    run = evaluate("vizwiz", table_of(samples, texts), ScoringContext(root, tmp_path)).output
    assert run["accuracy"] == pytest.approx(expected["accuracy"]) and run["n_errors"] == 0
    upload = vizwiz.write_submission(table_of(samples, texts), tmp_path / "val_upload.json")
    assert vizwiz_metric.score_files(annotations, upload)["accuracy"] == pytest.approx(expected["accuracy"])
    items[0]["answers"] = items[0]["answers"][:3]
    (tmp_path / "bad.json").write_text(json.dumps(items))
    with pytest.raises(ScoringError, match="VizWiz_val_00000000.jpg: 3 human answers; VQA accuracy needs 10"):
        vizwiz_metric.score_files(tmp_path / "bad.json", upload)


# ---------------------------------------------------------------- LLaVA-Bench


def test_llava_bench_answers_come_out_in_question_order(tmp_path):
    released = jsonl(RELEASED / "llava_bench/answers/llava-v1.5-13b.jsonl")
    root = tmp_path / "bench"
    placeholders(root / "images", ["001.jpg"])
    order = [5, 0, 3, 1, 4, 2]  # a question file whose ids are not sorted
    (root / "questions.jsonl").write_text("".join(
        json.dumps({"question_id": released[i]["question_id"], "image": "001.jpg", "text": released[i]["prompt"]})
        + "\n" for i in order))
    samples = read_benchmark("llava_bench", root)
    texts = {s.sample_id: released[order[n]]["text"] for n, s in enumerate(samples)}
    path = llava_bench.write_answers(table_of(samples, texts), tmp_path / "answers.jsonl")
    lines = jsonl(path)
    assert [line["question_id"] for line in lines] == [released[i]["question_id"] for i in order]
    assert [line["text"] for line in lines] == [released[i]["text"] for i in order]


# ---------------------------------------------------------------- run paths and foreign files


def test_scienceqa_run_path_equals_the_export_scored_by_file(sqa_root, tmp_path):

    samples = read_benchmark("scienceqa", sqa_root)
    llava = {a["question_id"]: a["text"] for a in jsonl(sqa_root / "answers/llava-v1.5-13b.jsonl")}
    texts = {s.sample_id: llava[s.metadata["pid"]] for s in samples}
    texts[samples[1].sample_id] = None  # an error row (pid 11, answered wrong anyway): FAILED, counted
    table = table_of(samples, texts)
    run = evaluate("scienceqa", table, ScoringContext(sqa_root, tmp_path)).output
    by_file = sqa_metric.score_files(sqa_root, scienceqa.write_answers(table, tmp_path / "a.jsonl"))
    assert run["n_errors"] == 1 and run["count"] == run["img_count"] == 3
    assert run["img_accuracy"] == by_file["img_accuracy"] == pytest.approx(1 / 3)
    assert {i["question_id"]: i["parsed_ans"] for i in run["per_item"]} == {
        i["question_id"]: i["parsed_ans"] for i in by_file["per_item"] if i["is_multimodal"]}


@pytest.mark.parametrize("args, message", [
    (["scienceqa", "--base-dir", "scienceqa", "--result-file", "scienceqa/problems.json"],
     "problems.json: one JSON document, not JSONL records"),
    (["scienceqa", "--base-dir", "scienceqa", "--result-file", "pope/llava_pope_test.jsonl"],
     "missing key 'prompt'"),
    (["scienceqa", "--base-dir", "pope", "--result-file", "scienceqa/answers/crafted.jsonl"],
     "pid_splits.json: no such file"),
    (["vizwiz", "--annotations", "vizwiz/Annotations/test.json", "--answers", "vizwiz/answers_upload/llava-v1.5-13b.json"],
     "missing key 'answers'"),
    (["vizwiz", "--annotations", "vizwiz/Annotations/val.json", "--answers", "vizwiz/llava_test.jsonl"],
     "llava_test.jsonl: record 1: missing key 'answer'"),
    (["vizwiz", "--annotations", "vizwiz/Annotations/val.json", "--answers", "vizwiz/answers/llava-v1.5-13b.jsonl"],
     "question_id 6 is not an annotation index (0..5)"),
    (["pope", "--questions", "pope/coco/coco_pope_random.json", "--answers", "scienceqa/problems.json"],
     "one JSON document, not JSONL records"),
])
def test_foreign_files_get_one_line_errors(args, message, capsys):
    from jobs.cli import main

    metric, *rest = args
    argv = ["score", metric, *[a if a.startswith("--") else str(RELEASED / a) for a in rest]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_vizwiz_test_split_run_is_unscored_not_failed(tmp_path):
    root = tmp_path / "vizwiz"
    shutil.copytree(RELEASED / "vizwiz", root)
    placeholders(root / "test", [q["image"] for q in jsonl(root / "llava_test.jsonl")])
    samples = read_benchmark("vizwiz", root, subset="test")
    run = evaluate("vizwiz", table_of(samples, {s.sample_id: "yes" for s in samples}), ScoringContext(root, tmp_path)).output
    assert run["accuracy"] is None and run["n_unscored"] == 40 and "EvalAI" in run["note"]
