"""Bring your own data: the ratings and intents CSV formats, their errors, the suites' help pages, and the
recommender protocols on logs that are not MovieLens 100K (many years, string ids, half stars, repeats)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lifelong.bench.registry import SUITES
from lifelong.cli import main
from lifelong.data import load_intents, parse_columns, parse_delimiter
from lifelong.envs.recsys import Ratings, load_ratings, load_ratings_csv
from lifelong.errors import InvalidInput, NotFound
from lifelong.eval.recsys import cold_start, positives_by_user, rating_step, replay
from lifelong.experience.records import Feedback, Interaction, Scope, Step
from lifelong.learners import Popularity
from lifelong.learners.recsys.covisitation import CoVisitation

DAY, YEAR = 86_400, 365 * 86_400
START = 946_684_800  # 2000-01-01T00:00:00Z


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- ratings CSV ---------------------------------------------------------------------------------------
RATINGS = """userId,movieId,rating,timestamp,tag
user-b,tt002,4.5,2004-03-21T00:44:34Z,x
user-a,tt001,3.5,1000000000,
user-a,"tt,003",5,2001-09-09T01:46:41+00:00,y
user-c,tt001,0.5,2010-01-01,
"""


def test_a_ratings_csv_loads_with_string_ids_half_stars_and_mixed_times(tmp_path: Path) -> None:
    data = load_ratings(write(tmp_path / "ratings.csv", RATINGS))
    assert isinstance(data, Ratings) and len(data) == 4 and data.n_users == 3 and data.n_items == 3
    assert np.all(np.diff(data.time) >= 0)  # sorted by time: 2001-09-09T01:46:40, +1 s, 2004, 2010
    assert data.time[0] == 1_000_000_000 and data.time[1] == 1_000_000_001
    assert [data.user_ids[u] for u in data.user] == ["user-a", "user-a", "user-b", "user-c"]
    assert [data.item_ids[i] for i in data.item] == ["tt001", "tt,003", "tt002", "tt001"]  # quoted comma
    assert data.rating.tolist() == [3.5, 5.0, 4.5, 0.5] and data.threshold == 4.0
    assert not data.has_features and data.genres is None and data.name == "ratings.csv"
    described = data.describe()
    assert described["path"].endswith("ratings.csv") and described["events"] == 4 and described["users"] == 3
    assert described["positives"] == 2 and described["side_features"] is False


def test_columns_delimiter_bom_and_labels(tmp_path: Path) -> None:
    text = "\ufeffWHO;What;clicked;When\nu1;i1;1;100\nu2;i1;0;50\nu1;i2;1;200\n"
    file = write(tmp_path / "clicks.csv", text.encode("utf-8"))
    data = load_ratings_csv(
        file, columns={"user": "who", "item": "what", "rating": "clicked", "time": "when"}
    )
    assert len(data) == 3 and data.threshold == 1.0  # every rating is 0 or 1: a label, positive at 1
    assert data.time.tolist() == [50.0, 100.0, 200.0]
    named = parse_columns(
        "user=who, item=what, rating=clicked, time=when", ("user", "item", "rating", "time")
    )
    assert len(load_ratings_csv(file, columns=named)) == 3
    tabbed = write(tmp_path / "tabbed.tsv", "user\titem\trating\ttime\na\tb\t4\t10\n")
    assert len(load_ratings_csv(tabbed)) == 1 and len(load_ratings_csv(tabbed, delimiter="\t")) == 1
    assert parse_delimiter("tab") == "\t" and parse_delimiter(";") == ";" and parse_delimiter(None) is None
    assert load_ratings_csv(file, columns=named, positive=0.5).threshold == 0.5


BAD_RATINGS: list[tuple[str, str | bytes, type[Exception], list[str]]] = [
    ("empty", "", InvalidInput, ["bad.csv", "empty", "header"]),
    ("header-only", "user,item,rating,time\n", InvalidInput, ["bad.csv", "no rows"]),
    ("missing-column", "user,item,time\na,b,1\n", InvalidInput, ["bad.csv", "line 1", "rating", "--columns"]),
    (
        "not-a-number",
        "user,item,rating,time\na,b,4,1\na,c,5,2\na,d,x,3\n",
        InvalidInput,
        ["bad.csv", "line 4, column 'rating'", "'x' is not a number"],
    ),
    ("nan-rating", "user,item,rating,time\na,b,nan,1\n", InvalidInput, ["line 2, column 'rating'", "finite"]),
    (
        "bad-time",
        "user,item,rating,time\na,b,4,yesterday\n",
        InvalidInput,
        ["bad.csv", "line 2, column 'time'", "'yesterday'", "ISO 8601"],
    ),
    ("ms-time", "user,item,rating,time\na,b,4,1700000000000\n", InvalidInput, ["line 2", "milliseconds"]),
    ("negative-time", "user,item,rating,time\na,b,4,-5\n", InvalidInput, ["line 2, column 'time'"]),
    (
        "duplicate-header",
        "user,item,rating,Rating,time\na,b,4,4,1\n",
        InvalidInput,
        ["bad.csv", "line 1", "'Rating'", "twice"],
    ),
    ("empty-id", "user,item,rating,time\n,b,4,1\n", InvalidInput, ["line 2, column 'user'", "empty"]),
    ("long-row", "user,item,rating,time\na,b,c,4,1\n", InvalidInput, ["line 2", "more fields"]),
    ("short-row", "user,item,rating,time\na,b,4\n", InvalidInput, ["line 2", "fewer fields"]),
    ("open-quote", 'user,item,rating,time\na,"b,4,1\n', InvalidInput, ["bad.csv", "not valid CSV"]),
    ("not-utf8", b"user,item,rating,time\n\xff,b,4,1\n", InvalidInput, ["bad.csv", "UTF-8"]),
]


@pytest.mark.parametrize(
    ("text", "error", "words"), [c[1:] for c in BAD_RATINGS], ids=[c[0] for c in BAD_RATINGS]
)
def test_malformed_ratings_name_the_file_line_and_column(
    text: str | bytes, error: type[Exception], words: list[str], tmp_path: Path
) -> None:
    with pytest.raises(error) as info:
        load_ratings_csv(write(tmp_path / "bad.csv", text))
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_ratings_paths_and_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nowhere"):
        load_ratings_csv(tmp_path / "nowhere.csv")
    with pytest.raises(InvalidInput, match="no column 'stars'"):
        load_ratings_csv(write(tmp_path / "r.csv", RATINGS), columns={"rating": "stars"})
    with pytest.raises(InvalidInput, match="roles user and item both name column 'userId'"):
        load_ratings_csv(tmp_path / "r.csv", columns={"user": "userId", "item": "userId"})
    twice = write(tmp_path / "twice.csv", "user,item,rating,time,note,note\na,b,4,1,x,y\n")
    assert len(load_ratings_csv(twice)) == 1  # a column read by no role may appear twice
    with pytest.raises(InvalidInput, match="unknown role 'score'"):
        parse_columns("score=x", ("user", "item", "rating", "time"))
    with pytest.raises(InvalidInput, match="role=NAME"):
        parse_columns("user", ("user", "item"))
    with pytest.raises(InvalidInput, match="--delimiter"):
        parse_delimiter("::")
    folder = tmp_path / "ml"
    folder.mkdir()
    with pytest.raises(InvalidInput, match="--columns"):
        load_ratings(folder, columns={"user": "u"})  # a folder is MovieLens: --columns describe a CSV


# -- intents CSV ---------------------------------------------------------------------------------------
def intents_csv(path: Path, per_label: int = 10) -> Path:
    rows = [(f"query {n} about {label}, please", label) for label in "abc" for n in range(per_label)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["body", "queue"])
        writer.writerows(rows)
    return path


def test_one_intents_csv_is_split_per_label(tmp_path: Path) -> None:
    file = intents_csv(tmp_path / "tickets.csv")
    data = load_intents(file, columns={"text": "body", "label": "queue"}, holdout=0.2)
    assert data.layout == "csv" and data.categories == ["a", "b", "c"] and data.name == "tickets"
    assert len(data.train) == 24 and len(data.test) == 6  # 2 of each label's 10 rows held out
    assert sorted(set(data.test.labels)) == ["a", "b", "c"]
    assert not set(data.train.texts) & set(data.test.texts)
    assert data.train.texts[0].endswith(", please")  # the quoted comma kept
    again = load_intents(file, columns={"text": "body", "label": "queue"}, holdout=0.2)
    assert again.test.texts == data.test.texts  # drawn once, with a fixed seed
    whole = load_intents(file, columns={"text": "body", "label": "queue"}, holdout=0.0)
    assert len(whole.train) == 30 and len(whole.test) == 0
    assert data.describe()["train"] == 24 and "held out" in str(data.describe()["test_split"])


def test_an_intents_folder_keeps_the_banking77_layout(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", "text,category\nmy card is lost,card_lost\nwhere is my money,transfer\n")
    write(tmp_path / "test.csv", "text,category\ncard gone,card_lost\n")
    data = load_intents(tmp_path)
    assert data.layout == "banking77" and len(data.train) == 2 and len(data.test) == 1
    assert data.describe()["format"].startswith("BANKING77")


BAD_INTENTS: list[tuple[str, str | bytes, list[str]]] = [
    ("empty", "", ["bad.csv", "empty"]),
    ("missing-label", "text,whatever\nhello,x\n", ["bad.csv", "line 1", "label", "--columns"]),
    ("empty-text", "text,label\nhello,x\n  ,y\n", ["bad.csv", "line 3, column 'text'", "empty"]),
    ("duplicate-header", "text,label,Text\nhello,x,y\n", ["line 1", "'Text'", "twice"]),
    ("unquoted-comma", "text,label\nhello, world,x\n", ["line 2", "more fields"]),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in BAD_INTENTS], ids=[c[0] for c in BAD_INTENTS])
def test_malformed_intents_name_the_file_line_and_column(text: str, words: list[str], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        load_intents(write(tmp_path / "bad.csv", text))
    assert all(w in str(info.value) for w in words), str(info.value)


def test_a_bom_and_quoted_newlines_in_intents_are_read(tmp_path: Path) -> None:
    file = write(
        tmp_path / "i.csv", '\ufefftext,label\n"two\nlines, and a comma",x\nplain,x\nmore,y\nagain,y\n'
    )
    data = load_intents(file, holdout=0.5)
    assert sorted(data.train.texts + data.test.texts) == ["again", "more", "plain", "two\nlines, and a comma"]


# -- the CLI: per-suite help, errors ------------------------------------------------------------------
@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_suite_has_its_own_help(suite: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["bench", suite, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: lifelong bench {suite}") and f"lifelong bench {suite}:" in text
    assert "example:" in text and f"lifelong bench {suite} " in text.split("example:")[1]
    for flag in SUITES[suite].options:
        assert f"--{flag}" in text
    assert ("--data" in text) == bool(SUITES[suite].data)


def test_the_help_pages_describe_their_data(capsys: pytest.CaptureFixture[str]) -> None:
    pages = {}
    for suite in ("recsys", "intent-linear", "ella", "weights"):
        with pytest.raises(SystemExit):
            main(["bench", suite, "--help"])
        pages[suite] = capsys.readouterr().out
    assert "ISO 8601" in pages["recsys"] and "userId,movieId,rating,timestamp" in pages["recsys"]
    assert "--holdout" in pages["intent-linear"] and "text,label" in pages["intent-linear"]
    assert "per task" in pages["ella"] or "one per task" in pages["ella"]
    assert "--data" not in pages["weights"]
    assert len(set(pages.values())) == 4


def test_a_bad_ratings_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "ratings.csv", "user,item,rating,time\na,b,4,1\na,c,x,2\n")
    assert main(["bench", "recsys", "--data", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ratings.csv: line 3, column 'rating': 'x' is not a number" in err[0], err
    assert main(["bench", "intent-linear", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 2
    assert "none.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:  # a flag another suite has is refused by argparse
        main(["bench", "recsys", "--out", str(tmp_path), "--holdout", "0.2"])
    assert done.value.code == 2


# -- the protocols on logs of many years ---------------------------------------------------------------
def positive(item: str, when: float, user: str = "u") -> Step:
    interaction = Interaction(Scope(tenant="t", user=user), {"user": user, "item": item}, None, time=when)
    return Step(interaction, (Feedback.rating(interaction.id, 5.0, time=when),))


def test_popularity_over_many_years_ranks_by_recent_counts() -> None:
    model = Popularity(half_life=DAY)
    for n in range(50):  # a big count ten years ago, first seen
        model.learn(positive("old-big", START + n))
    for n in range(3):
        model.learn(positive("five-years", START + 5 * YEAR + n))
    model.learn(positive("last-month", START + 10 * YEAR - 30 * DAY))
    model.learn(positive("today", START + 10 * YEAR))
    _, scores = model.scores()
    assert np.all(np.isfinite(scores))  # log2 counts: 3,650 half-lives is -3,644, not 2^-3650 = 0.0
    # 2^-1825 and 2^-3650 underflow to 0.0: a product of counts and decays ties them, in first-seen order
    assert model.rank(k=4) == ["today", "last-month", "five-years", "old-big"]
    assert model.predict({"item": "old-big"}) == 0.0 and model.predict({"item": "today"}) == 1.0
    late = Popularity(half_life=DAY)
    late.learn(positive("a", START + 10 * DAY))
    late.learn(positive("a", START))  # late feedback: it weighs what it weighs ten days on
    assert late.predict({"item": "a"}) == pytest.approx(1 + 2**-10)


def drifting_log(path: Path, *, years: int = 12, per_year: int = 18, items: int = 40) -> Path:
    """Each year its own catalogue (``items`` new titles) and its own users, who arrive one a day from
    1 January and rate 30 of that year's titles (popular ones more often) within a few hours."""
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, items + 1)
    rows = []
    for year in range(years):
        for n in range(per_year):
            arrive = START + year * YEAR + n * DAY
            chosen = rng.choice(items, size=min(30, items), replace=False, p=weights / weights.sum())
            for m, j in enumerate(chosen):
                rows.append((f"y{year}-u{n}", f"y{year}-title-{j}", 4.5 + 0.5 * (m % 2), arrive + 600 * m))
    rng.shuffle(rows)  # the file in no particular order: the loader sorts by time
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "rating", "timestamp"])
        writer.writerows(rows)
    return path


def users_named(data: Ratings, names: list[str]) -> list[int]:
    return [data.user_ids.index(name) for name in names]


def test_cold_start_popularity_needs_the_clock_of_the_users_arrival(tmp_path: Path) -> None:
    data = load_ratings(drifting_log(tmp_path / "years.csv"))
    assert data.describe()["span_days"] > 10 * 365
    held_out = users_named(data, [f"y{y}-u{n}" for y in range(11) for n in (12, 15)])  # years 0-10
    background = users_named(data, [f"y{y}-u{n}" for y in range(12) for n in range(10)])
    ks = (0, 1, 5)

    def popularity(seed: int) -> Popularity:
        return Popularity(half_life=30 * DAY)

    at_end = cold_start(popularity, data, held_out, background, ks=ks, n_next=5)
    at_arrival = cold_start(popularity, data, held_out, background, ks=ks, n_next=5, as_of="arrival")
    # The background's end is the last year: its titles are all a 30-day popularity knows, and no held-out
    # user (years 0-10) ever rated one of them.
    assert all(v == 0.0 for v in at_end.recall.values()), at_end.recall
    assert all(v > 0.3 for v in at_arrival.recall.values()), at_arrival.recall
    assert at_arrival.as_of == "arrival" and at_arrival.users == len(held_out)


def taste_log(path: Path, *, repeats: float, users: int = 240, seed: int = 0) -> Path:
    """Users of six tastes (40 titles each) spread over 15 years; each picks 30 distinct titles of their
    taste, in random order, and with probability ``repeats`` after each pick re-rates one they had."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 41)
    rows = []
    for u in range(users):
        t = START + int(rng.integers(0, 15 * YEAR))
        picked: list[int] = []
        for j in rng.choice(40, size=30, replace=False, p=weights / weights.sum()):
            picked.append(int(j))
            rows.append((f"user-{u}", f"taste{u % 6}-{j}", 5.0, t))
            t += 3600
            if rng.random() < repeats:
                rows.append((f"user-{u}", f"taste{u % 6}-{picked[int(rng.integers(len(picked)))]}", 4.5, t))
                t += 3600
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([("user", "item", "rating", "time"), *rows])
    return path


def test_recall_of_a_learner_does_not_fall_with_k_on_a_fixed_user_set(tmp_path: Path) -> None:
    data = load_ratings(taste_log(tmp_path / "taste.csv", repeats=0.5))
    by_user = positives_by_user(data)
    number = {u: int(data.user_ids[u].removeprefix("user-")) for u in by_user}  # u % 6 is the taste
    held_out = sorted(u for u in by_user if number[u] % 5 == 0)[:40]
    background = sorted(u for u in by_user if number[u] % 5 != 0)[:120]
    assert all(len(by_user[u]) == 30 for u in held_out)  # a re-rated title is not a second positive
    run = cold_start(
        lambda seed: CoVisitation(window=5, context=5), data, held_out, background, ks=(0, 5, 20)
    )
    assert run.users == 40
    assert run.recall[20] >= run.recall[5] > run.recall[0], run.recall  # counted with repeats: 0.40 → 0.39
    assert run.gain[0] == 0.0 and run.gain[5] > 0.2 and run.gain[20] > 0.2, run.gain
    # Replay ranks only first positives: a re-rating could never be a hit, the user's rated items left out.
    trace = replay(Popularity(), data, predicts_ratings=False)
    assert len(trace.hits) == sum(len(v) for v in positives_by_user(data).values())


def test_rating_steps_carry_dense_ids_and_the_files_time(tmp_path: Path) -> None:
    data = load_ratings(write(tmp_path / "r.csv", RATINGS))
    step = rating_step(data, 0)
    # dense ids in order of first appearance in the file: user-b is u1, user-a u2; tt002 i1, tt001 i2
    assert step.interaction.observation == {"user": "u2", "item": "i2"} and step.interaction.time == 1e9
    assert step.rating == 3.5


def test_bench_recsys_result_names_the_csv_it_ran_on(tmp_path: Path) -> None:
    """The whole recsys suite on a small many-year CSV without side features: config["data"] names it."""
    file = taste_log(tmp_path / "taste.csv", repeats=0.0, users=240)
    out = tmp_path / "out"
    assert (
        main(["bench", "recsys", "--data", str(file), "--out", str(out), "--seeds", "1", "--steps", "600"])
        == 0
    )
    result = json.loads((out / "recsys.json").read_text())
    assert result["config"]["data"]["path"] == str(file) and result["config"]["data"]["events"] == 7200
    assert "taste.csv" in result["name"] and "MovieLens" not in result["name"]
    assert "replay.ours.rating+features" in result["skipped"]
    assert set(result["recall_at_10_gain_by_k"]["ours.ranking"]) == {"0", "1", "2", "5", "10", "20"}
    assert "popularity" in result["cold_start_as_of_arrival"]["recall_at_10_by_k"]
