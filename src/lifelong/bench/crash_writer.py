"""A writer process for the crash and concurrency tests and the reliability campaign.

    python -m lifelong.bench.crash_writer URL MODE COUNT TAG

MODE is ``single`` (one append per record) or ``batch`` (append_many of 25 interactions with their
feedback). Prints each interaction id on stdout only after its append returned — an acknowledged
write. COUNT 0 means: write until killed.
"""

from __future__ import annotations

import itertools
import sys

from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope


def main() -> None:
    url, mode, count, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    log = ExperienceLog(url)
    written = 0
    for n in itertools.count():
        if count and written >= count:
            break
        if mode == "single":
            i = Interaction(Scope(user=tag), f"{tag}-{n}", "a")
            log.append(i)
            log.append(Feedback.reward(i.id, 1.0))
            print(i.id, flush=True)
            written += 1
        else:
            size = 25 if not count else min(25, count - written)
            batch = [Interaction(Scope(user=tag), f"{tag}-{n}-{k}", "a") for k in range(size)]
            log.append_many([*batch, *(Feedback.reward(i.id, 1.0) for i in batch)])
            print("\n".join(i.id for i in batch), flush=True)
            written += size
    log.close()


if __name__ == "__main__":
    main()
