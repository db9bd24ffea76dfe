"""halleval's video exports and scores against what Video-ChatGPT's and Video-LLaVA's own scripts
made of the same files with the same GPT replies (tests/fixtures/video/README.md).

The judge is a real OpenAI-compatible loopback server replaying the replies the reference
scripts got; it answers only byte-identical prompts, so every judged item also proves that
halleval sent the reference's prompt.
"""

import json

import pytest
from video_fixtures import FIXTURES, ChatServer, fixture_table

from eval.api import ScoringContext, ScoringError
from eval.metrics.videogen import read_textgen
from eval.metrics.videoqa import read_predictions, video_chatgpt_keys
from eval.scoring import evaluate, samples_table
from jobs.cli import main
from pipeline.benchmarks.video import write_answers, write_textgen_answers

EXPORTS = FIXTURES / "exports"
EXPECTED = json.loads((FIXTURES / "reference" / "expected.json").read_text())
REPLIES = [json.loads(line) for line in (FIXTURES / "reference" / "replies.jsonl").read_text().splitlines()]


@pytest.fixture
def gpt():
    with ChatServer(REPLIES) as server:
        yield server


def score(tmp_path, capsys, *argv):
    out = tmp_path / "result.json"
    assert main(["score", *argv, "--out", str(out)]) == 0, capsys.readouterr().err
    return json.loads(out.read_text())


def judged(tmp_path, criterion):
    """id → the reply halleval's judge cache holds for `criterion`."""
    cache = tmp_path / "result.json.judged.jsonl"
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    return {r["id"]: {k: r[k] for k in ("pred", "score") if k in r} for r in records if r["criterion"] == criterion}


def test_exports_are_the_files_the_reference_scripts_read(tmp_path):
    """The committed exports (which the reference scripts read) are what the exporters write."""
    table = fixture_table("activitynet_qa", "Activitynet_Zero_Shot_QA")
    reversed_table = table.take(list(range(table.num_rows))[::-1])  # Parquet part order is not file order
    write_answers(reversed_table, tmp_path / "a.json")
    write_answers(reversed_table, tmp_path / "a.jsonl", layout="video_llava")
    assert (tmp_path / "a.json").read_text() == (EXPORTS / "activitynet_qa.json").read_text()
    assert (tmp_path / "a.jsonl").read_text() == (EXPORTS / "activitynet_qa.jsonl").read_text()
    for subset in ("generic", "temporal", "consistency"):
        table = fixture_table("video_chatgpt", "Video_5_Benchmark", subset)
        path = write_textgen_answers(table.take(list(range(table.num_rows))[::-1]), tmp_path / f"{subset}.json")
        assert path.read_text() == (EXPORTS / f"{subset}.json").read_text()
    lines = [json.loads(line) for line in (EXPORTS / "activitynet_qa.jsonl").read_text().splitlines()]
    questions = json.loads((FIXTURES / "Activitynet_Zero_Shot_QA" / "test_q.json").read_text())
    assert [line["id"] for line in lines] == [q["question_id"] for q in questions]
    assert next(line for line in lines if line["id"] == "v_9eniCub7u60_5")["pred"] == ""  # the error row


@pytest.mark.parametrize(("export", "reference"), [("activitynet_qa.json", "activitynet_qa_videochatgpt"),
                                                   ("activitynet_qa.jsonl", "activitynet_qa_videollava")])
def test_videoqa_scores_the_export_as_the_reference_script_does(tmp_path, capsys, gpt, export, reference):
    expected = EXPECTED[reference]
    result = score(tmp_path, capsys, "videoqa", "--predictions", str(EXPORTS / export),
                   "--judge", f"openai:gpt-3.5-turbo@{gpt.base_url}")
    printed = expected["printed"]
    assert (result["yes"], result["no"], result["n"], result["n_unjudged"]) == (
        printed["Yes count"], printed["No count"], len(expected["results"]), 0)
    assert result["accuracy"] == printed["Accuracy"] and result["average_score"] == printed["Average score"]
    # field by field: each item's reply, found under the reference's own key for it
    records = json.loads((EXPORTS / "activitynet_qa.json").read_text())
    key_of = dict(zip([r["id"] for r in records], video_chatgpt_keys(records), strict=True))
    ours = judged(tmp_path, "qa")
    for item_id, reply in ours.items():
        key = key_of[item_id] if reference.endswith("videochatgpt") else item_id
        reply_of_reference, qa_set = expected["results"][key]
        assert reply == reply_of_reference
        record = next(r for r in records if r["id"] == item_id)
        assert (qa_set["q"], qa_set["a"], qa_set["pred"]) == (record["Q"], record["A"], record["pred"])
    assert len(ours) == 20


def test_videoqa_reads_video_chatgpt_layout_keyed_as_the_reference(tmp_path, capsys, gpt):
    records = json.loads((EXPORTS / "activitynet_qa.json").read_text())
    only_reference_keys = tmp_path / "preds.json"
    only_reference_keys.write_text(json.dumps([{k: r[k] for k in ("video_name", "Q", "A", "pred")} for r in records]))
    assert [item["id"] for item in read_predictions(only_reference_keys)] == video_chatgpt_keys(records)
    result = score(tmp_path, capsys, "videoqa", "--predictions", str(only_reference_keys),
                   "--judge", f"openai:gpt-3.5-turbo@{gpt.base_url}")
    expected = EXPECTED["activitynet_qa_videochatgpt"]
    assert {key: [reply] for key, reply in judged(tmp_path, "qa").items()} == {
        key: value[:1] for key, value in expected["results"].items()}
    assert result["accuracy"] == expected["printed"]["Accuracy"]


CRITERION_LINES = {"correctness": "Average score for correctness", "detail": "Average score for detailed orientation",
                   "context": "Average score for contextual understanding",
                   "temporal": "Average score temporal understanding", "consistency": "Average score for consistency"}


def assert_like_reference(tmp_path, result, criteria):
    for criterion in criteria:
        expected = EXPECTED[criterion]
        ours = result["criteria"][criterion]
        assert (ours["n"], ours["n_unjudged"]) == (len(expected["results"]), 0), ours
        assert ours["average_score"] == expected["printed"][CRITERION_LINES[criterion]] == result[criterion]
        assert judged(tmp_path, criterion) == {key: value[0] for key, value in expected["results"].items()}


def test_videogen_scores_our_export_as_the_five_reference_scripts(tmp_path, capsys, gpt):
    result = score(tmp_path, capsys, "videogen", "--judge", f"openai:gpt-3.5-turbo@{gpt.base_url}",
                   *[arg for subset in ("generic", "temporal", "consistency")
                     for arg in ("--predictions", str(EXPORTS / f"{subset}.json"))])
    assert list(result["criteria"]) == ["correctness", "detail", "context", "temporal", "consistency"]
    assert_like_reference(tmp_path, result, CRITERION_LINES)
    assert gpt.calls == 3 * 3 + 2 + 2


def test_videogen_reads_video_chatgpts_own_prediction_files(tmp_path, capsys, gpt):
    """Video-ChatGPT's inference scripts write the benchmark items plus pred (no `subset`)."""
    files = {}
    for subset in ("generic", "temporal", "consistency"):
        records = json.loads((EXPORTS / f"{subset}.json").read_text())
        files[subset] = tmp_path / f"{subset}_pred.json"
        files[subset].write_text(json.dumps([{k: v for k, v in r.items() if k != "subset"} for r in records]))
    assert read_textgen(files["consistency"])[1] == "consistency" and read_textgen(files["generic"])[1] is None
    result = score(tmp_path, capsys, "videogen", "--judge", f"openai:gpt-3.5-turbo@{gpt.base_url}",
                   "--predictions", f"correctness,detail,context={files['generic']}",
                   "--predictions", f"temporal={files['temporal']}", "--predictions", str(files["consistency"]))
    assert_like_reference(tmp_path, result, CRITERION_LINES)


def test_videogen_reproduces_video_llavas_consistency_copy_on_request(tmp_path, capsys, gpt):
    """Video-LLaVA's eval_benchmark_5_consistency.py sends Q1 as both questions: other prompts, other replies."""
    expected = EXPECTED["consistency_videollava"]
    result = score(tmp_path, capsys, "videogen", "--judge", f"openai:gpt-3.5-turbo@{gpt.base_url}",
                   "--reference", "video_llava", "--predictions", str(EXPORTS / "consistency.json"))
    assert result["consistency"] == expected["printed"]["Average score for consistency"]
    assert result["consistency"] != EXPECTED["consistency"]["printed"]["Average score for consistency"]
    assert judged(tmp_path, "consistency") == {f"{key}@q1q1": value[0] for key, value in expected["results"].items()}


def test_videogen_bad_files_are_one_line_errors(tmp_path, capsys):
    generic = tmp_path / "generic_pred.json"
    generic.write_text(json.dumps([{"video_name": "v", "Q": "q", "A": "a", "pred": "p"}]))
    pope = tmp_path / "answers.jsonl"
    pope.write_text('{"question_id": 1, "text": "yes"}\n')
    cases = [
        (["--predictions", str(generic)], "no subset recorded in the file; name its criteria"),
        (["--predictions", str(pope)], "record 1 has keys ['question_id', 'text']; expected"),
        (["--predictions", f"consistency={generic}"], "consistency needs the consistency file's predictions"),
        (["--predictions", f"tempral={generic}"], "unknown criterion 'tempral'"),
        (["--predictions", f"temporal={generic}", "--predictions", f"temporal={generic}"], "a criterion is given twice"),
    ]
    for argv, message in cases:
        assert main(["score", "videogen", "--judge", "exact", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and message in err, err
    cases = [(["videogen", "--predictions", f"correctness={EXPORTS / 'activitynet_qa.json'}"],
              "a video-QA prediction file (id, question, answer); score it with `halleval score videoqa`"),
             (["videoqa", "--predictions", str(EXPORTS / "generic.json")],
              "record 1 is a video_chatgpt prediction (subset 'generic'); score it with `halleval score videogen`")]
    for argv, message in cases:
        assert main(["score", *argv, "--judge", "exact"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert main(["score", "videoqa", "--judge", "exact", "--predictions", str(pope)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{pope}: record 1 has keys" in err and "(video_llava)" in err, err


def test_a_video_chatgpt_run_is_scored_like_the_reference(tmp_path, gpt):
    """The run path (metric videogen on a run's rows) gives the reference's numbers on each subset."""
    context = ScoringContext(benchmark_root=FIXTURES / "Video_5_Benchmark", run_dir=tmp_path,
                             judge=f"openai:gpt-3.5-turbo@{gpt.base_url}")
    for subset, criteria in (("generic", ("correctness", "detail", "context")), ("temporal", ("temporal",)),
                             ("consistency", ("consistency",))):
        result = evaluate("videogen", fixture_table("video_chatgpt", "Video_5_Benchmark", subset), context).output
        assert list(result["criteria"]) == list(criteria) and result["n_errors"] == 0
        for criterion in criteria:
            assert result[criterion] == EXPECTED[criterion]["printed"][CRITERION_LINES[criterion]]
    exact = evaluate("videogen", fixture_table("video_chatgpt", "Video_5_Benchmark", "generic"),
                     ScoringContext(benchmark_root=tmp_path, run_dir=tmp_path, judge="exact")).output
    assert exact["criteria"] == {} and "the exact judge cannot grade" in exact["error"]


def test_a_consistency_pair_with_an_error_row_is_left_out(tmp_path):
    table = fixture_table("video_chatgpt", "Video_5_Benchmark", "consistency")
    rows = table.to_pylist()
    rows[1]["error"], rows[1]["output_text"] = "video could not be decoded", None
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps({"id": str(n), "criterion": "consistency", "score": n}) + "\n" for n in (1, 2)))
    from pipeline.schema import to_table

    result = evaluate("videogen", to_table(rows), ScoringContext(
        benchmark_root=tmp_path, run_dir=tmp_path, judge=f"replay:{replay}"))
    output = result.output
    assert output["n_errors"] == 1 and output["criteria"]["consistency"]["n"] == 1 and output["consistency"] == 2
    # Per sample: both rows of the judged pair carry its score, one of them counted; the broken pair none.
    pairs = {}
    for outcome in result.outcomes:
        pairs.setdefault(outcome["item"], []).append(outcome)
    assert sorted((len(p), sum(o["counted"] for o in p), p[0].get("consistency")) for p in pairs.values()) == [
        (2, 0, None), (2, 1, 2)]
    assert output["bootstrap"]["unit"] == "item" and samples_table({"videogen": result}).num_rows == len(rows)


def test_a_foreign_file_fails_videogen_scoring_with_its_name(tmp_path):
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([{"video_name": "v", "Q": "q", "A": "a", "pred": "p", "subset": "generic"},
                                 {"video_name": "v", "Q": "q", "A": "a", "pred": "p", "subset": "temporal"}]))
    with pytest.raises(ScoringError, match=r"mixed.json: records of several subsets \(generic, temporal\)"):
        read_textgen(mixed)


@pytest.mark.slow
def test_a_video_chatgpt_run_writes_its_scores(local_ray, tmp_path):
    """`halleval run` on the benchmark in Video-LLaVA's layout, a tiny Video-LLaVA, a replayed judge."""
    import yaml

    from pipeline.config import load_config

    replay = tmp_path / "replies.jsonl"
    replay.write_text("".join(json.dumps({"id": str(entry), "criterion": criterion, "score": score}) + "\n"
                              for criterion, scores in (("correctness", (3, 4, 5)), ("detail", (1, 1, 4)),
                                                        ("context", (2, 2, 2)))
                              for entry, score in zip((1, 2, 3), scores, strict=True)))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "video_llava"},
        "benchmark": {"name": "video_chatgpt", "root": str(FIXTURES / "Video_5_Benchmark"), "num_frames": 2},
        "generation": {"max_new_tokens": 2},
        "scoring": {"judge": f"replay:{replay}"},
        "output_dir": str(tmp_path / "runs"),
    }))
    assert main(["run", str(config)]) == 0
    scores = json.loads((load_config(config).run_dir / "scores.json").read_text())
    videogen = scores["metrics"]["videogen"]
    assert (scores["n_samples"], scores["n_errors"], videogen["n_errors"]) == (3, 0, 0)
    assert (videogen["correctness"], videogen["detail"], videogen["context"]) == (4.0, 2.0, 2.0)
    assert videogen["judge"] == f"replay:{replay}"
    assert (load_config(config).run_dir / "videogen.judged.jsonl").is_file()
