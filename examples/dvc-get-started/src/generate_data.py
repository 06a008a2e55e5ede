"""Write data/data.xml: a small Stack Overflow-like posts dump (no network needed).

The official example downloads a sample of Stack Overflow posts; this makes one of the same shape:
one ``<row .../>`` per line inside ``<posts>``, with Id, Title, Body and Tags, about a fifth of
them tagged ``<r>`` (the label the pipeline learns). Same seed, same bytes.

Usage: python src/generate_data.py [N_POSTS] [SEED]
"""

import os
import random
import sys
from xml.sax.saxutils import quoteattr

COMMON = (
    "how", "to", "get", "the", "value", "from", "a", "list", "and", "print", "it", "without", "a",
    "loop", "in", "my", "function,", "what", "is", "wrong", "with", "this", "code", "it", "returns",
    "an", "error", "when", "I", "run", "it", "on", "windows", "linux", "file", "data", "table",
    "string", "number", "array", "object", "class", "method", "variable", "type", "install", "package",
    "version", "update"
)
R_WORDS = (
    "dataframe", "ggplot2", "dplyr", "tidyverse", "vector", "factor", "rstudio", "cran", "lapply",
    "sapply", "tibble", "data.frame", "na.rm", "rmarkdown", "shiny", "plot", "aes", "geom_point",
    "mutate", "summarise"
)
OTHER_WORDS = (
    "javascript", "react", "node", "django", "flask", "java", "spring", "maven", "css", "html", "div",
    "jquery", "sql", "mysql", "postgres", "docker", "kubernetes", "android", "kotlin", "swift", "ios",
    "c++", "pointer", "template"
)
OTHER_TAGS = ("python", "javascript", "java", "sql", "c++", "android", "html", "css", "docker")


def post(rng: random.Random, pid: int) -> str:
    is_r = rng.random() < 0.2
    topic = R_WORDS if is_r else OTHER_WORDS
    # Some posts borrow the other topic's words: the task should not be trivially separable.
    noisy = rng.random() < 0.15
    words = [rng.choice(COMMON) for _ in range(rng.randint(10, 40))]
    words += [rng.choice(OTHER_WORDS if (is_r and noisy) else R_WORDS if noisy else topic)
              for _ in range(rng.randint(1, 6))]
    rng.shuffle(words)
    title = " ".join(words[:8]).capitalize() + "?"
    body = "<p>" + " ".join(words) + "</p>"
    tags = ["r"] if is_r else []
    tags += rng.sample(OTHER_TAGS, rng.randint(0 if is_r else 1, 2))
    tag_text = "".join(f"<{t}>" for t in tags)
    return (f'  <row Id="{pid}" PostTypeId="1" Score="{rng.randint(-3, 50)}" '
            f"Body={quoteattr(body)} Title={quoteattr(title)} Tags={quoteattr(tag_text)} />\n")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20170426
    rng = random.Random(seed)
    os.makedirs("data", exist_ok=True)
    with open(os.path.join("data", "data.xml"), "w", encoding="utf-8") as fd:
        fd.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for pid in range(1, n + 1):
            fd.write(post(rng, pid))
        fd.write("</posts>\n")


if __name__ == "__main__":
    main()
