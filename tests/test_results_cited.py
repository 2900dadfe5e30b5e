"""The numbers README.md and benchmarks/README.md cite match their files.

The convention (benchmarks/README.md, "Result files", says it for a writer):
- A line CITES a file when it holds a Markdown link or image whose target is
  a file under benchmarks/results/ (relative to the doc). A link to a file
  that does not exist fails. A PNG stands for its JSON sibling.
- On a citing line, every figure written `98.7%` and both sides of every
  `97.6 ± 0.2` must equal, at the decimals shown, a number held in a linked
  file, as a fraction times 100 or as is.
- Not checked: `code spans`; figures in underscore italics (`_98.2%_`, for
  numbers that are not from the linked files, e.g. the paper's); cells of a
  table column whose header holds the word "paper".

Every result file also carries `cpu`, `code_version`, `command` and
`test_split` (a history list or a plot: its owning JSON file does).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from typing import Iterator, List, Optional, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join("benchmarks", "results")
DOCS = ("README.md", os.path.join("benchmarks", "README.md"))
PROVENANCE_FIELDS = ("cpu", "code_version", "command", "test_split")

# [text](target) or ![alt](target); the target ends at the first ")" or space.
_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)[^)]*\)")
_CODE = re.compile(r"`[^`]*`")
# Underscore italics: _..._ not inside a word (file names are in code or links).
_ITALIC = re.compile(r"(?<![\w\\])_(?=\S)(.+?)(?<=\S)_(?!\w)")
_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
# A sign counts only where it starts a word: the "-" of 98.1-98.9% is a dash.
_PERCENT = re.compile(r"(?:(?:(?<=[\s(\[*/])|^)([+\-−]))?(?<![\d.,])(" +
                      _NUMBER + r")\s?%")
_PLUS_MINUS = re.compile(r"(?<![\d.,])(" + _NUMBER + r")\s*±\s*(" + _NUMBER +
                         r")")
# The plots a JSON file owns: NAME_accuracy_vs_time.png, NAME_samples.png,
# NAME_errors_STEP.png (of NAME_error_sources_STEP.json).
_PNG_OWNERS = ((re.compile(r"_accuracy_vs_time\.png$"), ".json"),
               (re.compile(r"_samples\.png$"), ".json"),
               (re.compile(r"_errors_(\d+)\.png$"), r"_error_sources_\1.json"))


def json_owner(path: str) -> Optional[str]:
  """The JSON file that holds the facts of result file `path` (repo-relative
  or absolute): a JSON dict is its own owner; a PNG's owner is its sibling;
  NAME_history.json (a list of evaluations) is owned by NAME.json, or by the
  longest existing NAME's prefix cut at "_" (e.g. X_seed2_to17000_history.json
  by X_seed2.json). None when no owner exists."""
  if path.endswith(".png"):
    for pattern, repl in _PNG_OWNERS:
      if pattern.search(path):
        owner = pattern.sub(repl, path)
        return owner if os.path.exists(_abs(owner)) else None
    return None
  if path.endswith("_history.json"):
    stem = path[:-len("_history.json")]
    while stem and not os.path.exists(_abs(stem + ".json")):
      if "_" not in os.path.basename(stem):
        return None
      stem = stem.rsplit("_", 1)[0]
    return stem + ".json" if stem else None
  return path


def _abs(path: str) -> str:
  return path if os.path.isabs(path) else os.path.join(ROOT, path)


def numbers_in(value) -> Iterator[float]:
  """Every number in a JSON value, recursively (bools excluded); numbers
  inside strings count too (e.g. "98.66%" in a note)."""
  if isinstance(value, bool) or value is None:
    return
  if isinstance(value, (int, float)):
    if math.isfinite(value):
      yield float(value)
  elif isinstance(value, str):
    for m in re.finditer(r"[-+]?\d+(?:\.\d+)?", value):
      yield float(m.group(0))
  elif isinstance(value, dict):
    for v in value.values():
      yield from numbers_in(v)
  elif isinstance(value, list):
    for v in value:
      yield from numbers_in(v)


def _decimals(text: str) -> int:
  return len(text.split(".")[1]) if "." in text else 0


def found(text: str, values: List[float], sign: str = "") -> bool:
  """Whether figure `text` (as written, e.g. "97.6") equals some value, as a
  fraction x100 or as is, after rounding to the figure's decimals."""
  x = float(text.replace(",", ""))
  if sign in ("-", "−"):
    x = -x
  tolerance = 0.5 * 10 ** -_decimals(text) + 1e-9
  for v in values:
    for candidate in (100 * v, v):
      if abs(candidate - x) <= tolerance:
        return True
      if not sign and abs(abs(candidate) - x) <= tolerance:
        return True  # "0.34% behind" written without its sign
  return False


def _exempt_columns(header: str) -> set:
  cells = _CODE.sub("", header).strip().strip("|").split("|")
  return {i for i, cell in enumerate(cells) if "paper" in cell.lower()}


def cited_targets(line: str, doc: str) -> List[str]:
  """The repo-relative targets under benchmarks/results/ of the links on
  `line` of doc `doc` (repo-relative); folders are not citations."""
  out = []
  for _, target in _LINK.findall(line):
    target = target.split("#")[0]
    if not target or "://" in target:
      continue
    path = os.path.normpath(os.path.join(os.path.dirname(doc), target))
    if (path + os.sep).startswith(RESULTS + os.sep) and not os.path.isdir(
        _abs(path)):
      out.append(path)
  return out


def figures(line: str, exempt_columns=frozenset()) -> List[Tuple[str, str]]:
  """The figures a citing line states: (sign, number as written) for each
  "N%" and both sides of each "A ± B", outside code, link targets, italics
  and exempt table columns."""
  # Keep a link's text, drop its target; drop an image's alt text too.
  text = _LINK.sub(lambda m: " " if m.group(0)[0] == "!" else m.group(1),
                   line)
  text = _CODE.sub(" ", text)
  if exempt_columns and text.lstrip().startswith("|"):
    cells = text.strip().strip("|").split("|")
    text = "|".join(c for i, c in enumerate(cells) if i not in exempt_columns)
  text = _ITALIC.sub(" ", text)
  out = []
  for m in _PLUS_MINUS.finditer(text):
    out += [("", m.group(1)), ("", m.group(2))]
  text = _PLUS_MINUS.sub(" ", text)
  for m in _PERCENT.finditer(text):
    out.append((m.group(1) or "", m.group(2)))
  return out


def check_doc(doc: str, text: Optional[str] = None) -> List[str]:
  """Every failure of doc `doc` (repo-relative) against the convention, as
  "DOC:LINE: message"; `text` replaces the doc's contents (for tests)."""
  if text is None:
    with open(_abs(doc), encoding="utf-8") as f:
      text = f.read()
  failures, fence, exempt, prev = [], False, frozenset(), ""
  cache = {}
  for number, line in enumerate(text.split("\n"), start=1):
    if line.lstrip().startswith("```"):
      fence = not fence
    if fence:
      continue
    stripped = line.strip()
    if stripped.startswith("|") and re.fullmatch(r"[|:\-\s]+", stripped):
      exempt = frozenset(_exempt_columns(prev))  # prev was a table header
    elif not stripped.startswith("|"):
      exempt = frozenset()
    prev = line
    targets = cited_targets(line, doc)
    if not targets:
      continue
    values, missing = [], False
    for target in targets:
      if not os.path.exists(_abs(target)):
        failures.append(f"{doc}:{number}: links {target}, which does not "
                        "exist")
        missing = True
        continue
      owner = json_owner(target) if target.endswith(".png") else target
      if owner is None:
        failures.append(f"{doc}:{number}: links {target}, a plot without "
                        "its JSON file beside it")
        continue
      if owner not in cache:
        with open(_abs(owner), encoding="utf-8") as f:
          cache[owner] = list(numbers_in(json.load(f)))
      values += cache[owner]
    if missing:
      continue
    for sign, figure in figures(line, exempt):
      if not found(figure, values, sign):
        failures.append(
            f"{doc}:{number}: {sign}{figure} is in none of "
            f"{', '.join(targets)} (at its {_decimals(figure)} decimals, as "
            "a fraction x100 or as is); fix it, or write it _in italics_ if "
            "it is not from these files")
  return failures


def result_files() -> List[str]:
  out = []
  for folder, _, names in os.walk(_abs(RESULTS)):
    for name in names:
      out.append(os.path.relpath(os.path.join(folder, name), ROOT))
  return sorted(out)


# --- The docs ---------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS)
def test_doc_cites_numbers_its_files_hold(doc):
  failures = check_doc(doc)
  assert not failures, "\n".join(failures)


def test_results_are_in_folders():
  loose = [p for p in result_files() if os.path.dirname(p) == RESULTS]
  assert not loose, f"put these in a folder of {RESULTS}: {loose}"


def test_every_result_file_records_its_provenance():
  failures = []
  for path in result_files():
    if not path.endswith((".json", ".png")):
      continue
    owner = json_owner(path)
    if owner is None:
      failures.append(f"{path}: no JSON file beside it holds its facts")
      continue
    with open(_abs(owner), encoding="utf-8") as f:
      data = json.load(f)
    if not isinstance(data, dict):
      failures.append(f"{path}: a list, and no owning NAME.json")
      continue
    for field in PROVENANCE_FIELDS:
      value = data.get(field)
      # A string; the bench's cpu is a dict; a result of several commands
      # lists them in order.
      if not value or not isinstance(value, (str, dict, list)):
        failures.append(f"{owner}: no `{field}`")
  assert not failures, "\n".join(sorted(set(failures)))


# --- The checker itself, on a tiny fake doc ---------------------------------


@pytest.fixture
def fake_result(tmp_path, monkeypatch):
  """A fake repo with benchmarks/results/x/run.json and its plot."""
  folder = tmp_path / "benchmarks" / "results" / "x"
  folder.mkdir(parents=True)
  (folder / "run.json").write_text(json.dumps(
      {"runs": {"pixelda": {"final_test_accuracy": 0.9866, "std": 0.0021,
                            "minutes": 60.2}}}))
  (folder / "run_accuracy_vs_time.png").write_bytes(b"")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
  return "benchmarks/results/x/run.json"


GOOD = ("| task | paper | ours | file |\n|---|---|---|---|\n"
        "| A | 98.2% | **98.7%** / 98.66 ± 0.2% (60 min, `--x=0.5%`), "
        "_99.9%_ | [run](benchmarks/results/x/run.json) |\n"
        "![curve 12%](benchmarks/results/x/run_accuracy_vs_time.png) 98.66%\n"
        "A line with no link: 12.3% is not checked.\n")


def test_checker_passes_a_faithful_doc(fake_result):
  assert check_doc("README.md", GOOD) == []


def test_checker_fails_on_a_mutated_number(fake_result):
  failures = check_doc("README.md", GOOD.replace("**98.7%**", "**98.8%**"))
  assert len(failures) == 1
  assert failures[0].startswith("README.md:3: 98.8 is in none of "
                                "benchmarks/results/x/run.json")
  failures = check_doc("README.md", GOOD.replace("± 0.2%", "± 0.3%"))
  assert [f.split(" is in")[0] for f in failures] == ["README.md:3: 0.3"]
  # The paper column and italics are exempt; outside them 98.2% is checked.
  assert check_doc("README.md", GOOD.replace("_99.9%_", "99.9%"))


def test_checker_fails_on_a_missing_file(fake_result):
  failures = check_doc("benchmarks/README.md", GOOD.replace(
      "benchmarks/results/x/run.json", "results/x/gone.json"))
  assert failures == ["benchmarks/README.md:3: links benchmarks/results/x/"
                      "gone.json, which does not exist"]


def test_checker_reads_relative_links_from_benchmarks_readme(fake_result):
  doc = "see [run](results/x/run.json): 98.66%, 98.7%\n"
  assert check_doc("benchmarks/README.md", doc) == []
  assert len(check_doc("benchmarks/README.md", doc + doc.replace(
      "98.7%", "97.7%"))) == 1


def test_owners():
  assert json_owner("benchmarks/results/a/x_seed2_to17000_history.json") in (
      None, "benchmarks/results/a/x_seed2.json")
  assert json_owner("benchmarks/results/a/run.json") == (
      "benchmarks/results/a/run.json")


# --- The writers record the facts -------------------------------------------


def test_result_fields_name_the_machine_code_command_and_split(monkeypatch):
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import result_fields  # pylint: disable=g-import-not-at-top
  for name in result_fields.KERNEL_ENV:
    monkeypatch.delenv(name, raising=False)
  out = result_fields.fields("the released test split")
  assert set(out) == set(PROVENANCE_FIELDS)
  assert out["test_split"] == "the released test split"
  assert out["cpu"].endswith(" cores")
  assert result_fields.command(
      [os.path.join(ROOT, "benchmarks", "faults.py"), "--runs=2", "--",
       "--flagfile=a b.flags"]) == (
           "python benchmarks/faults.py --runs=2 -- '--flagfile=a b.flags'")
  # A variable that changes the kernels is part of the command.
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
  assert result_fields.command(["bench", "--steps=2"]) == (
      "ONEDNN_MAX_CPU_ISA=AVX2 bench --steps=2")


def test_accuracy_summary_json_carries_the_facts(tmp_path):
  row = {"final_test_accuracy": 0.97, "best_val_checkpoint_test_accuracy":
         0.96, "steps": 20, "minutes": 3.0, "target": "USPS"}
  paths = []
  for seed, final in enumerate((0.97, 0.95)):
    path = tmp_path / f"seed{seed}.json"
    path.write_text(json.dumps({"test_split": "the USPS test split", "runs": {
        "pixelda": {**row, "final_test_accuracy": final}}}))
    paths.append(str(path))
  out = tmp_path / "seeds.json"
  subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "accuracy.py"),
       "--summarize=" + ",".join(paths), f"--summary_json={out}"],
      capture_output=True, text=True, cwd=ROOT, check=True)
  summary = json.loads(out.read_text())
  assert summary["final"]["mean"] == pytest.approx(0.96)
  assert summary["test_split"] == "the USPS test split"
  assert "--summary_json=" in summary["command"]
  assert all(summary[field] for field in PROVENANCE_FIELDS)
