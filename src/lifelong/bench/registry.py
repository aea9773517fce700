"""The suites of ``lifelong bench SUITE --out DIR``: name → what it measures, what data it reads, its flags.

Each suite is a function ``run(args) -> Result`` in one module of this package, imported only when the
suite runs (the agent and weight suites load llama.cpp and torch). A run writes ``DIR/<suite>.json`` and
``DIR/<suite>.png``. ``lifelong bench SUITE --help`` prints the suite's :class:`Suite` text: what it
measures, the data it reads (the formats are in ``docs/data.md``), its flags and an example.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from lifelong.eval.result import Result
from lifelong.files import check_writable_dir

__all__ = ["SUITES", "Suite", "run_suite"]


@dataclass(frozen=True)
class Suite:
    """A benchmark suite: a one-line ``help``, ``module:function`` in :mod:`lifelong.bench`, its help page.

    ``about`` says what the suite measures; ``data`` what ``--data`` reads (empty: the suite reads no
    data set and has no ``--data``); ``steps`` what ``--steps`` counts; ``options`` the suite's own flags
    (names of :data:`lifelong.cli.BENCH_OPTIONS`); ``example`` a command line.
    """

    help: str
    target: str
    about: str = ""
    data: str = ""
    steps: str = "limit the stream length"
    options: tuple[str, ...] = ()
    example: str = ""

    def load(self) -> Callable[[argparse.Namespace], Result]:
        module, function = self.target.split(":")
        return cast(
            Callable[[argparse.Namespace], Result],
            getattr(importlib.import_module(f"lifelong.bench.{module}"), function),
        )

    def run(self, args: argparse.Namespace) -> Result:
        return self.load()(args)

    def epilog(self) -> str:
        """The data format and the example, printed after the flags by ``--help``."""
        parts = []
        if self.data:
            parts.append("data:\n" + self.data.rstrip())
        if self.example:
            parts.append("example:\n" + self.example.rstrip())
        return "\n\n".join(parts)


#: The intents' --data text; {probe} and {single} differ between the suites with and without a probe.
INTENTS_DATA = """\
  --data names a folder in BANKING77 layout or one CSV file (formats: docs/data.md).
  - folder: {probe}, optional categories.json listing the labels;
    a data folder holding banking77/ works too. Default: $LIFELONG_DATA/banking77, else
    ../shared/data/banking77.
{single}  Either CSV: a header row, then one labelled text per row, e.g.
      text,label
      "I lost my card, what now?",card_lost
  columns found by name: text = text; label = label, category or intent (--columns text=NAME,label=NAME
  for others). The delimiter (, tab ; |) is read from the header unless --delimiter; a UTF-8 BOM is
  skipped; quote fields that hold the delimiter. A bad row fails naming the file, line and column.
"""

INTENTS_PROBED = INTENTS_DATA.format(
    probe="train.csv (streamed) and test.csv (probed)",
    single="  - one CSV file: its rows are split per label, --holdout of each label's rows (default 0.2,\n"
    "    drawn once with seed 0) held out as the test split.\n",
)

RATINGS_DATA = """\
  --data names a ratings CSV file, a MovieLens 100K folder (u.data, u.item, u.user) or a data folder
  holding ml-100k/. Default: $LIFELONG_DATA/ml-100k, else ../shared/data/ml-100k (formats: docs/data.md).
  Ratings (or interactions) CSV: a header row, then one event per row, e.g.
      userId,movieId,rating,timestamp
      u-17,tt0114709,4.5,2004-03-21T00:44:34Z
  columns found by name (any case; --columns user=NAME,item=NAME,rating=NAME,time=NAME for others;
  other columns are ignored):
      user    any non-empty id           user, user_id, userid, uid
      item    any non-empty id           item, item_id, itemid, movie, movie_id, movieid, iid
      rating  a number: stars, half      rating, label, score, value
              stars, a score, a 0/1 label
      time    unix seconds or ISO 8601   time, timestamp, ts, datetime, date
              (2004-03-21, 2004-03-21T00:44:34+02:00; no zone = UTC)
  Ids are mapped to dense numbers in order of first appearance; events are sorted by time. A rating
  >= 4 is a positive (>= 1 when every rating is 0 or 1) unless --positive. The delimiter is read from
  the header unless --delimiter. A CSV has no side features: the +features rating model is skipped and
  the result says so. A bad row fails naming the file, line and column.
"""

SUITES: dict[str, Suite] = {
    "intent-linear": Suite(
        "BANKING77 prequential stream: online softmax vs frozen control vs river naive Bayes",
        "intents:intent_linear",
        about="Prequential (test-then-train) accuracy of the online softmax on hashed text over the train "
        "split in a shuffled order per seed, against its frozen control (frozen after 500 steps, same "
        "order) and river's multinomial naive Bayes; accuracy on the test split (probe) and the ratios "
        "to river.",
        data=INTENTS_PROBED,
        options=("columns", "delimiter", "holdout"),
        example="  lifelong bench intent-linear --data ../shared/data/banking77 --out runs/bench --seeds 5\n"
        "  lifelong bench intent-linear --data tickets.csv --columns text=body,label=queue --out runs/mine",
    ),
    "intent-continual": Suite(
        "BANKING77 as 5 sequential tasks: continual matrix R with ACC/BWT/FWT",
        "intents:intent_continual",
        about="The labels are split into 5 tasks (a fifth of the labels each), learned one after another; "
        "after each task every task's test split is probed: the matrix R, average accuracy (ACC), "
        "backward transfer (BWT, forgetting) and forward transfer (FWT). Needs >= 5 labels.",
        data=INTENTS_PROBED,
        steps="examples streamed per task",
        options=("columns", "delimiter", "holdout"),
        example="  lifelong bench intent-continual --data ../shared/data/banking77 --out runs/bench "
        "--seeds 3",
    ),
    "intent-adaptation": Suite(
        "BANKING77: adaptation gap G(k) on 10 unseen intents after learning the other 67",
        "intents:intent_adaptation",
        about="Learn every label but 10 from its stream, then adapt to the 10 unseen ones: accuracy on "
        "their test split after k of their examples, k = 0 ... 1000, against the frozen control (gap "
        "G(k)). Needs >= 11 labels.",
        data=INTENTS_PROBED,
        steps="examples of the known labels learned first",
        options=("columns", "delimiter", "holdout"),
        example="  lifelong bench intent-adaptation --data ../shared/data/banking77 --out runs/bench "
        "--seeds 3",
    ),
    "ella": Suite(
        "multi-task data (land mine by default, or --data: CSV folder, .npz): ELLA vs batch GO-MTL vs STL vs "
        "pooled, AUC or RMSE and training time (paper Table 1)",
        "ella:ella_landmine",
        about="Ruvolo & Eaton (ICML 2013) Table 1: ELLA, batch GO-MTL, single-task learning and one pooled "
        "model on the same 50/50 splits per task (--seeds splits), hyper-parameters by inner splits; AUC "
        "(classification) or RMSE (regression), training time, time per new task, ELLA's speed-up.",
        data="""\
  --data names multi-task data (formats: docs/data.md):
  - a folder of CSV files, one per task (task name = file name): a header row, the same columns in
    every file, numeric features and one target column (--target NAME, else 'target' or 'y');
  - one .npz with arrays X_<task> and y_<task>;
  - the land mine landminedata.mat, or a folder holding it (default: $LIFELONG_DATA/landmine).
  The task type comes from the target (0/1 or two values: classification) unless --task-type.
""",
        options=("target", "task-type"),
        example="  lifelong bench ella --data ../shared/data/landmine --out runs/bench --seeds 10",
    ),
    "ella-synthetic": Suite(
        "synthetic regression (100 tasks, k=6): ELLA vs GO-MTL vs STL vs pooled, RMSE and time",
        "ella:ella_synthetic",
        about="The paper's synthetic regression: 100 tasks from a shared basis of 6 latent components; "
        "ELLA vs GO-MTL vs STL vs pooled on the same splits, RMSE and training time. Reads no data.",
        example="  lifelong bench ella-synthetic --out runs/bench --seeds 10",
    ),
    "ella-scale": Suite(
        "ELLA on 10,000 synthetic tasks (--steps to change): time per new task and memory",
        "ella:ella_scale",
        about="ELLA fed synthetic tasks one by one: time per new task, the size of its shared state and "
        "the process's memory, which stay flat. Reads no data.",
        steps="tasks (default 10,000)",
        example="  lifelong bench ella-scale --out runs/bench --steps 2000",
    ),
    "recsys": Suite(
        "MovieLens 100K (or a ratings CSV) replay (ours vs frozen vs popularity vs river vs Vowpal "
        "Wabbit), cold start, exploration regret on simulated users, feedback-to-policy latency",
        "recsys:recsys",
        about="""\
1. prequential replay: before each event (time order) every model predicts the rating (RMSE, MAE)
   and, for a positive, ranks 10 items leaving out the user's rated ones (HR@10, NDCG@10), then
   learns: the rating model, the ranker (FPMC + co-visitation), each with its frozen control (frozen
   after 10,000 events), time-decayed popularity (its half-life the best of 6 h ... inf on this
   replay, unless --half-life), river and Vowpal Wabbit peers; learn throughput.
2. cold start: 100 background users (a draw per seed) learned, then each of 100 fixed held-out
   users (>= 25 positives) reveals k positives: Recall@10 on their next 5, and the gain over the
   frozen control on the same targets; again with the background as of each user's arrival.
3. exploration regret on 100 simulated users (epsilon-greedy, LinUCB, greedy, with frozen controls).
4. feedback-to-policy latency, in process and through a durable SQLite log.""",
        data=RATINGS_DATA,
        steps="replay only the first N events",
        options=("columns", "delimiter", "positive", "half-life"),
        example="  lifelong bench recsys --data ../shared/data/ml-100k --out runs/bench --seeds 5\n"
        "  lifelong bench recsys --data ratings.csv --columns user=userId,item=movieId --out runs/mine "
        "--seeds 1 --steps 20000",
    ),
    "intent-stream": Suite(
        "intents (BANKING77, or --data: a folder in its layout or a CSV): Gemma 3 270M with learned "
        "context and five more experts combined online (ExpertMixture), a harness search, vs frozen vs "
        "every expert alone vs Hedge; repeat errors by intent and on near-duplicates; recall latency "
        "(--steps: items)",
        "agents:intent_stream",
        about="Gemma 3 270M (llama.cpp) names each query's intent with learned context (examples, lessons, "
        "memory) and five more experts combined online (ExpertMixture) under a learned harness, against "
        "the frozen control, every expert alone and Hedge, prequentially; repeat errors by intent and "
        "on near-duplicates; recall latency. Needs the local models.",
        data=INTENTS_DATA.format(
            probe="train.csv (streamed), test.csv",
            single="  - one CSV file: all its rows are streamed (this suite has no probe).\n",
        ),
        steps="items streamed (default 1000)",
        options=("columns", "delimiter", "ablation-steps", "variants"),
        example="  lifelong bench intent-stream --out runs/bench --seeds 3 --steps 1000 --ablation-steps 200",
    ),
    "code-completion": Suite(
        "a developer writes stdlib packages (or --source DIR); Gemma 3 270M completes lines with and "
        "without learned context, a gate with an explicit --objective, a harness search, vs frozen vs "
        "kNN vs each model expert alone (--steps: requests)",
        "agents:code_completion",
        about="A simulated developer writes real code top to bottom (standard-library packages, or "
        "--source DIR); at sampled line starts Gemma 3 270M completes the line, with learned context and "
        "a suggestion gate optimising --objective, against the frozen control, kNN and each expert "
        "alone: accept rate, reward per request, characters saved. Needs the local models.",
        data="""\
  No --data: the code is the standard library (--packages, default json,email,http,logging) or
  --source DIR (a directory or git checkout; its .py files in path order).
""",
        steps="completion requests (default 1000)",
        options=("source", "packages", "objective", "ablation-steps", "variants"),
        example="  lifelong bench code-completion --out runs/bench --seeds 3 --steps 150 "
        "--ablation-steps 150",
    ),
    "weights": Suite(
        "code completion in weight space: Gemma 3 270M LoRA updated online by policy gradient from "
        "accept/reject (gated, guarded) vs the frozen base, guard ablation, token vs weights vs both, "
        "retention (--steps: requests)",
        "weights:weights",
        about="Code completion in weight space: a LoRA adapter on Gemma 3 270M (PyTorch) updated online by "
        "policy gradient from accept/reject, each update gated on a held-out probe and guarded (KL, "
        "replay), against the frozen base; guard ablation; token-space vs weights vs both; retention as "
        "held-out perplexity. Needs torch and the model; reads no data set.",
        steps="completion requests (default 200)",
        options=("ablation-steps", "variants"),
        example="  lifelong bench weights --out runs/bench --seeds 3 --steps 120 --ablation-steps 96",
    ),
    "consolidation": Suite(
        "code completion in weight space, learning *what*: corrections consolidated into Gemma 3 270M's "
        "LoRA adapter in sleep-time, vs the frozen base, policy gradient, both, token space, token + "
        "weights; distillation; per-user fast weights (--steps: requests)",
        "consolidation:consolidation",
        about="Code completion in weight space: a simulated developer writes a standard-library package "
        "(a quarter of its files held out); each correction and accepted line becomes a supervised update "
        "of a LoRA adapter on Gemma 3 270M (PyTorch) in the idle time after the request, gated on a "
        "held-out probe. Against the frozen base, the policy gradient alone, both, token space and token "
        "+ weights: accepted completions per request, characters saved, exact match on held-out lines, "
        "retention (held-out perplexity), cost per learning event; distillation (exact match against "
        "prompt tokens with 0/2/6 recalled examples); part users: three coding styles interleaved, "
        "shared adapter vs shared + per-user fast weights. Needs torch and the model; reads no data set.",
        steps="completion requests per order (default 96)",
        options=("packages", "ablation-steps", "variants", "parts", "user-steps"),
        example="  lifelong bench consolidation --out runs/bench --seeds 3",
    ),
    "crafter": Suite(
        "the new-game test on Crafter: a Voyager-style skill agent (skill library, automatic curriculum, "
        "self-verification) vs its frozen control, random, ablations, the LLM proposer; transfer",
        "crafter:crafter",
        about="""\
A stream of episodes in fresh Crafter worlds (seeded; one stream per --seeds), the learned skill library
and effect lessons carried across episodes (lifelong.agents.skills). Variants on the same worlds:
learning, frozen (nothing kept between episodes), random, no_library, no_curriculum (random tasks),
no_verification (no critic, no gate) and llm (the Gemma 3 270M proposer, --llm-episodes episodes of the
first seed; --model-url for any OpenAI-compatible endpoint). Per episode: achievements (which of the
22), reward, steps, verification steps, LLM calls and tokens. Over the run: the Crafter score
(geometric mean of success rates), the slope of achievements per episode with a bootstrap CI, the
tech-tree milestones (episodes and steps to the first wood / stone / iron pickaxe and diamond). Then
transfer: the 22 achievements posed as tasks in new worlds with the final library vs an empty one.
Reads no data set; Crafter runs offline from its PyPI package.""",
        steps="episode length in environment steps (default 10,000, Crafter's own; deaths end most earlier)",
        options=("episodes", "variants", "llm-episodes", "model-url", "transfer-steps"),
        example="  lifelong bench crafter --out runs/bench --seeds 5 --episodes 30",
    ),
    "serve-learning": Suite(
        "what lifelong serve learns, through its API with the official openai client: a label app and a "
        "support-answer app on a BANKING77-layout stream, vs the frozen shadow, every expert alone and the "
        "library's agent (--steps: requests per order)",
        "serve_learning:serve_learning",
        about="""\
A real `lifelong serve` process per stream order (Gemma 3 270M in-process, MiniLM, SQLite in OUT); this
process is the app: it declares its apps (POST /v1/apps), sends every request with the official `openai`
client and the feedback a real app would send. --streams labels: an intent-routing app (task: label),
each query corrected with its intent; the service's answers against the frozen shadow it runs beside
them, every expert alone (read from the service's log) and the library's agent for the same app on the
same order (--variants service drops it). --streams support: a support app (task: chat); each intent
has one answer text (written from its name by the benchmark), which the simulated support agent gives
as the correction; right answers, the shadow's, repeat error by intent and misapplied corrections.""",
        data=INTENTS_DATA.format(
            probe="train.csv (streamed), test.csv",
            single="  - one CSV file: all its rows are streamed (this suite has no probe).\n",
        ),
        steps="requests per stream and order (default 1000)",
        options=("columns", "delimiter", "variants", "streams", "support-tokens"),
        example="  lifelong bench serve-learning --out runs/bench --seeds 3 --steps 1000\n"
        "  lifelong bench serve-learning --out runs/quick --seeds 1 --steps 200 --streams support "
        "--variants service",
    ),
    "memory": Suite(
        "evidence recall@5/10/25/50 of Memory on LoCoMo-layout conversations vs plain dense cosine, "
        "overall and per category; add/search latency, ingest throughput",
        "memory:memory_bench",
        about="""\
Each conversation is one user's memory: its sessions are added in order (Memory.add_many, one call per
session at the session's date; every turn one item, linked to its neighbours), then each question is
searched. Evidence recall@k (Maharana et al., ACL 2024): the share of a question's evidence turns among
the top k (1 for a question without evidence), averaged over questions, overall and per category, for
Memory (dense views + BM25, fused by reciprocal rank) and the plain dense control (the same MiniLM,
cosine only) in the same run. Latency: add_many per session, turns/s, search per question, and search
with --items items in one user's memory. Needs MiniLM; no LLM.""",
        data="""\
  --data names a JSON file in LoCoMo's layout (or a folder holding locomo-dev.json or locomo10.json).
  Default: $LIFELONG_DATA/locomo-dev/locomo-dev.json, else ../shared/data/locomo-dev/locomo-dev.json.
  A list of samples: conversation has speaker_a, speaker_b, session_N (lists of {speaker, dia_id, text,
  optional blip_caption}) and session_N_date_time ("1:56 pm on 8 May, 2023"); qa is a list of
  {question, answer, evidence: [dia_id, ...], category 1-5}. A bad field fails naming the file and it.
""",
        steps="unused",
        options=("items",),
        example="  lifelong bench memory --out runs/memory --data ../shared/data/locomo-dev/locomo-dev.json",
    ),
    "examples-recall": Suite(
        "the example bank's kNN vote on an intent stream: dense recall vs dense + BM25 with learned trust",
        "memory:examples_recall_bench",
        about="Prequential (vote, then learn the right label) accuracy of ExampleBank's similarity-weighted "
        "vote over its 6 best examples, per seed a shuffled order of the train split, with recall by the "
        "MiniLM cosine alone and fused with BM25 (the channels' trust learned from the bank's own "
        "verdicts). Needs MiniLM; no LLM.",
        data=INTENTS_DATA.format(
            probe="train.csv (streamed)",
            single="  - one CSV file: all its rows are streamed.\n",
        ),
        steps="items streamed (default 1000)",
        options=("columns", "delimiter"),
        example="  lifelong bench examples-recall --out runs/bench --seeds 3 --steps 1000",
    ),
    "serve": Suite(
        "the learning service on loopback: proxy overhead at 100K learned items, /v1/feedback throughput "
        "(SQLite, 1 worker; PostgreSQL, --workers), feedback -> visible across workers",
        "serve:serve_bench",
        about="""\
Real processes on this machine: a llama.cpp server (Gemma 3 270M) as the upstream, `lifelong serve`
on a SQLite log with one worker and on the PostgreSQL server with --workers workers, this process as the
client. 1. proxy overhead (everything but the upstream call: auth, catch-up with the log, MiniLM query
embedding, recall over --items learned items, prompt, logging) of --steps completion requests, as the
service times it and as the client sees it; 2. /v1/feedback throughput and p50/p99 from 32 concurrent
connections, --feedback requests; 3. feedback -> visible: a memory added on one process, read on another
at once, --rounds times, p50/p99. The items' MiniLM vectors are computed once (minutes) and cached in
OUT/serve-cache. Reads no data set: the items are line pairs of the standard library's source.""",
        steps="proxy requests (default 300)",
        options=("items", "feedback", "rounds", "workers"),
        example="  lifelong bench serve --out runs/bench\n"
        "  lifelong bench serve --out runs/quick --items 10000 --steps 100 --feedback 1000 --rounds 50",
    ),
}


def run_suite(args: argparse.Namespace) -> int:
    """Run ``args.suite``, save its result under ``args.out`` and print the summary.

    ``--out`` is checked first (it can be created and written), so no suite runs for nothing.
    """
    check_writable_dir(args.out, "--out")
    result = SUITES[args.suite].run(args)
    json_path, png_path = result.save(Path(args.out), args.suite)
    print(result.summary())
    print(f"wrote {json_path} and {png_path}")
    return 0
