"""`halleval score {chair,pope,mme,scienceqa,vizwiz,videoqa,videogen,llava-bench,mm-vet,saliency-bins}`: score files in the reference
scorers' own formats (or a run's generations folder, for chair). Each prints a short table and
writes the full JSON to --out (stdout when omitted)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from eval.html.page import fmt
from eval.io import write_result
from eval.nlp import TAGGER_CHOICES


def _table(result: dict[str, Any], keys: list[str]) -> None:
    # The table goes to stderr when the JSON goes to stdout, so stdout stays parseable.
    stream = sys.stderr
    for key in keys:
        print(f"{key:<28}{fmt(result.get(key))}", file=stream)


def _chair(args: argparse.Namespace) -> int:
    from eval.metrics.chair import read_captions, run_captions, score_captions
    from pipeline.schema import read_generations

    source = Path(args.captions)
    if source.is_dir():
        pairs, n_errors = run_captions(read_generations(source))
    else:
        pairs, n_errors = read_captions(source), 0
    result = {**score_captions(pairs, args.coco_annotations, args.tagger), "n_errors": n_errors}
    _table(result, ["chair_s", "chair_i", "recall", "avg_len", "n_captions", "n_errors", "tagger"])
    write_result(result, args.out)
    return 0


def _pope(args: argparse.Namespace) -> int:
    from eval.metrics.pope import score_files

    result = score_files(args.questions, args.answers, args.annotation_dir)
    keys = ["accuracy", "precision", "recall", "f1", "yes_ratio", "tp", "fp", "tn", "fn", "n"]
    if "categories" in result:  # LLaVA's bundle: one block per category, as eval_pope.py prints
        for category, scores in result["categories"].items():
            print(f"category {category}", file=sys.stderr)
            _table(scores, keys)
        print("mean over categories", file=sys.stderr)
        _table(result["mean"], keys[:5])
    else:
        _table(result, keys)
    write_result(result, args.out)
    return 0


def _mme(args: argparse.Namespace) -> int:
    from eval.metrics.mme import read_results, score_tasks

    result = score_tasks(read_results(args.results))
    _table(result, ["perception", "cognition", "total"])
    for task, scores in result["tasks"].items():
        print(f"  {task:<26}{scores['score']:.2f}", file=sys.stderr)
    write_result(result, args.out)
    return 0


def _scienceqa(args: argparse.Namespace) -> int:
    from eval.metrics.scienceqa import score_files

    result = score_files(args.base_dir, args.result_file, args.split)
    _table(result, ["accuracy", "correct", "count", "img_accuracy", "img_correct", "img_count"])
    write_result(result, args.out)
    return 0


def _vizwiz(args: argparse.Namespace) -> int:
    from eval.metrics.vizwiz import score_files

    result = score_files(args.annotations, args.answers)
    _table(result, ["accuracy", "n"])
    write_result(result, args.out)
    return 0


def _videoqa(args: argparse.Namespace) -> int:
    from eval.metrics.videoqa import cache_path, read_predictions, score_qa

    result = score_qa(read_predictions(args.predictions), args.judge, cache_path(args.out, args.predictions))
    _table(result, ["accuracy", "average_score", "yes", "no", "n", "n_unjudged", "judge"])
    write_result(result, args.out)
    return 0


def _videogen(args: argparse.Namespace) -> int:
    from eval.api import ScoringError
    from eval.metrics.videogen import SUBSET_CRITERIA, read_textgen, score_textgen
    from eval.metrics.videoqa import cache_path

    batches, paths = [], []
    for argument in args.predictions:
        named, _, path = argument.partition("=")
        if not path or not re.fullmatch(r"[a-z,]+", named):  # no criteria prefix: '=' belongs to the path
            named, path = "", argument
        paths.append(path)
        items, subset = read_textgen(path, args.reference)
        if not named and subset is None:
            raise ScoringError(f"{path}: no subset recorded in the file; name its criteria, e.g. "
                               f"--predictions correctness,detail,context={path} (generic_qa predictions) "
                               f"or --predictions temporal={path}")
        batches.append((tuple(named.split(",")) if named else SUBSET_CRITERIA[subset], items))
    result = score_textgen(batches, args.judge, cache_path(args.out, paths[0]))
    for criterion, scores in result["criteria"].items():
        print(f"{criterion:<28}{fmt(scores['average_score'])}  (n={scores['n']}, unjudged={scores['n_unjudged']})",
              file=sys.stderr)
    write_result(result, args.out)
    return 0


def _judge_settings(args: argparse.Namespace):
    from eval.judges import JudgeSettings

    return JudgeSettings(max_in_flight=args.max_in_flight, requests_per_s=args.requests_per_s,
                         deadline_s=args.deadline_s)


def _side_file(out: str | None, source: str, suffix: str) -> Path:
    """A file beside the output (or beside the input when printing to stdout)."""
    anchor = Path(out) if out is not None else Path(source)
    return anchor.with_name(anchor.name + suffix)


def _llava_bench(args: argparse.Namespace) -> int:
    from eval.metrics.llava_bench import read_answers, read_items, score_reviews, write_reviews

    items = read_items(args.questions, args.context, args.reference_answers, read_answers(args.answers))
    result, reviews = score_reviews(items, args.judge, _side_file(args.out, args.answers, ".judged.jsonl"),
                                    _judge_settings(args))
    reviews_path = write_reviews(reviews, _side_file(args.out, args.answers, ".reviews.jsonl"))
    _table(result, ["relative_score", "reference_score", "model_score", "n", "n_unjudged", "judge"])
    for category, scores in result["categories"].items():
        print(f"  {category:<26}{fmt(scores['relative_score'])}  (n={scores['n']})", file=sys.stderr)
    print(f"reviews (LLaVA's review format): {reviews_path}", file=sys.stderr)
    write_result(result, args.out)
    return 0


def _mm_vet(args: argparse.Namespace) -> int:
    from eval.metrics.mm_vet import read_items, read_metadata, read_results, score_grades, write_grades

    items = read_items(read_metadata(args.metadata), read_results(args.results), results_name=args.results)
    result, grades = score_grades(items, args.judge, _side_file(args.out, args.results, ".judged.jsonl"),
                                  _judge_settings(args))
    grades_path = write_grades(grades, _side_file(args.out, args.results, ".grades.json"))
    _table(result, ["total", "n", "n_unjudged", "judge"])
    for capability, score in result["capabilities"].items():
        print(f"  {capability:<26}{fmt(score)}", file=sys.stderr)
    print(f"grades (MM-Vet's grade-file format): {grades_path}", file=sys.stderr)
    write_result(result, args.out)
    return 0


def _run_benchmark_root(run_dir: Path) -> str:
    """The benchmark folder a run was generated from, as its config.yaml records it."""
    from pipeline.config import load_config

    return load_config(run_dir / "config.yaml").benchmark.root


def _saliency_bins(args: argparse.Namespace) -> int:
    from eval.api import ScoringError
    from eval.metrics.saliency_bins import score_saliency_bins

    try:
        bins = tuple(float(edge) for edge in args.bins.split(",")) if args.bins else None
    except ValueError:
        raise ScoringError(f"--bins {args.bins!r}: give comma-separated numbers, e.g. 0,0.1,0.2,1") from None
    annotations = args.coco_annotations or _run_benchmark_root(Path(args.run))
    result = score_saliency_bins(args.run, annotations, bins, args.tagger, binning=args.binning)
    print(f"binning: {result['binning']['mode']}", file=sys.stderr)
    for b in result["bins"]:
        print(f"[{b['lo']:.4g}, {b['hi']:.4g})  tokens={b['tokens']:<6} hallucinated={b['hallucinated']:<6} rate={b['rate']}",
              file=sys.stderr)
    _table(result, ["mean_saliency_correct", "mean_saliency_hallucinated", "n_object_tokens", "plot"])
    write_result(result, args.out)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds `score` and its sub-commands to the halleval command line."""
    parser = subparsers.add_parser("score", help="score outputs with CHAIR, POPE, MME, video-QA, saliency bins")
    commands = parser.add_subparsers(dest="metric", metavar="METRIC", required=True)

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--out", help="write the JSON result here (default: stdout)")
        sub.set_defaults(handler=handler)
        return sub

    chair = command("chair", _chair, "CHAIR_s / CHAIR_i / recall of captions (OPERA's chair.py)")
    chair.add_argument("--captions", required=True, help="JSON list or JSONL of {image_id, caption}, or a run's generations folder")
    chair.add_argument("--coco-annotations", required=True, help="folder with instances_/captions_{train,val}2014.json")
    chair.add_argument("--tagger", default="auto", choices=TAGGER_CHOICES, help="POS tagger (recorded in the output)")

    pope = command("pope", _pope, "POPE accuracy / precision / recall / F1 / yes-ratio")
    pope.add_argument("--questions", required=True,
                      help="POPE question file {question_id, image, text, label} (JSONL or JSON array), "
                      "or with --annotation-dir LLaVA's llava_pope_test.jsonl")
    pope.add_argument("--answers", required=True,
                      help="answers: LLaVA's {question_id, text} JSONL, or POPE's {question, answer} lines "
                      "(paired with the questions by order, as POPE's evaluate.py)")
    pope.add_argument("--annotation-dir",
                      help="LLaVA's pope/coco folder of coco_pope_<category>.json: score per category as "
                      "LLaVA's eval_pope.py")

    mme = command("mme", _mme, "MME perception / cognition scores (eval_tool calculation.py)")
    mme.add_argument("--results", required=True, help="folder of <task>.txt: image, question, gt, response (tab-separated)")

    sqa = command("scienceqa", _scienceqa, "ScienceQA accuracy and IMG-accuracy (LLaVA's eval_science_qa.py)")
    sqa.add_argument("--base-dir", required=True, help="folder with problems.json and pid_splits.json")
    sqa.add_argument("--result-file", required=True, help="answers JSONL {question_id, prompt, text}")
    sqa.add_argument("--split", default="test", help="split of pid_splits.json (default test)")

    vizwiz = command("vizwiz", _vizwiz, "VizWiz val VQA accuracy (EvalAI normalisation, LLaVA's m4c_evaluator)")
    vizwiz.add_argument("--annotations", required=True, help="VizWiz Annotations/val.json")
    vizwiz.add_argument("--answers", required=True,
                        help="[{image, answer}] submission JSON, or LLaVA's answers JSONL {question_id, text}")

    judge_help = "openai:MODEL[@BASE_URL], hf:PATH, replay:FILE or exact"
    videoqa = command("videoqa", _videoqa, "video QA accuracy / score with an LLM judge (Video-ChatGPT's rules)")
    videoqa.add_argument("--predictions", required=True,
                         help="Video-LLaVA merge.jsonl {id, question, answer, pred}, a Video-ChatGPT list "
                              "{video_name, Q, A, pred}, or halleval's video.write_answers export")
    videoqa.add_argument("--judge", required=True, help=judge_help)

    videogen = command("videogen", _videogen, "video text generation: the 5 Video-ChatGPT criteria")
    videogen.add_argument("--predictions", required=True, action="append", metavar="[CRITERIA=]FILE",
                          help="a Video-ChatGPT prediction file or halleval's write_textgen_answers export; "
                               "repeat per file. A file judges the criteria of its subset (generic: "
                               "correctness,detail,context; temporal; consistency), or those named before '='")
    videogen.add_argument("--judge", required=True, help=judge_help)
    videogen.add_argument("--reference", default="video_chatgpt", choices=("video_chatgpt", "video_llava"),
                          help="whose consistency prompt: Video-ChatGPT's (Q1, Q2) or Video-LLaVA's copy (Q1 twice)")

    llava = command("llava-bench", _llava_bench,
                    "LLaVA-Bench (in-the-wild) GPT review, relative score (LLaVA's eval_gpt_review_bench.py)")
    llava.add_argument("--questions", required=True, help="questions.jsonl {question_id, image, text, category}")
    llava.add_argument("--context", required=True, help="context.jsonl {image, caption}")
    llava.add_argument("--reference-answers", required=True, help="answers_gpt4.jsonl {question_id, text}")
    llava.add_argument("--answers", required=True, help="the model's answers.jsonl {question_id, text}")
    mmvet = command("mm-vet", _mm_vet, "MM-Vet GPT grading, per-capability totals (MM-Vet's mm-vet_evaluator.py)")
    mmvet.add_argument("--metadata", required=True, help="mm-vet.json (or the folder holding it)")
    mmvet.add_argument("--results", required=True, help="the model's results JSON {id: answer}")
    for sub in (llava, mmvet):
        sub.add_argument("--judge", required=True, help="openai:MODEL[@BASE_URL], hf:PATH or replay:FILE "
                         "(LLaVA used openai:gpt-4-0314, MM-Vet openai:gpt-4-0613)")
        sub.add_argument("--max-in-flight", type=int, default=16, help="judge requests at once")
        sub.add_argument("--requests-per-s", type=float, default=None, help="most judge requests started per second")
        sub.add_argument("--deadline-s", type=float, default=60.0, help="total time one judge request may take")

    bins = command("saliency-bins", _saliency_bins, "hallucination rate of object tokens per saliency bin")
    bins.add_argument("--run", required=True, help="a run folder (with generations/)")
    bins.add_argument("--coco-annotations", help="folder with the COCO annotation JSONs "
                      "(default: the benchmark root recorded in the run's config.yaml)")
    bins.add_argument("--binning", default="quantile", choices=("quantile", "fixed", "normalised"),
                      help="quantile: 5 bins of equal token counts (default); fixed: --bins on raw saliency; "
                      "normalised: --bins on saliency / the run's largest object-token saliency")
    bins.add_argument("--bins", help="increasing bin edges for fixed/normalised (default 0,0.1,...,1.0)")
    bins.add_argument("--tagger", default="auto", choices=TAGGER_CHOICES, help="POS tagger for CHAIR")
