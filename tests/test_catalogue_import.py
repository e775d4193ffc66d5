"""`catalogue import`: NICE pages (the seeds, and hand-made HTML variants) -> draft entries."""

import tomllib
from pathlib import Path

import pytest

from audit.catalogue import builtin_files, parse_guidance
from tests.conftest import FIXTURES, SHARED, run_cli

PAGES = FIXTURES / "pages"
SEEDS = sorted((SHARED / "seeds").glob("*.txt"))


def entry(path: Path):
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    guidance, titles, problems = parse_guidance(raw, path.name)
    assert problems == []
    return guidance, titles


def builtin(gid: str):
    return entry(next(f for f in builtin_files() if f.name == f"{gid.lower()}.toml"))


def components(guidance, *, audited_only=True):
    """Everything the audit reads from a code set; component notes are wording, not rules."""
    return [
        (cs.name, [(c.role, tuple(map(str, c.patterns)), c.icd10, c.requirement, c.identifies, c.scope,
                    tuple(map(str, c.recommended)))
                   for c in cs.components if not (audited_only and c.role == "diagnosis")])
        for cs in guidance.code_sets
    ]


def imported(tmp_path, *pages: Path):
    out = tmp_path / "drafts"
    result = run_cli("catalogue", "import", *map(str, pages), "--to", str(out))
    assert result.exit_code == 0, result.stderr
    return out, result


def assert_reproduces(draft_path: Path, gid: str):
    draft, _ = entry(draft_path)
    expected, _ = builtin(gid)
    assert draft.id == expected.id
    assert draft.title == expected.title
    assert (draft.replaces, draft.replaced_by) == (expected.replaces, expected.replaced_by)
    assert draft.opcs_version == expected.opcs_version
    # The code titles as the page prints them (the built-in entry may also flag some as unverified).
    raw = lambda path: tomllib.loads(path.read_text(encoding="utf-8")).get("titles", {})  # noqa: E731
    assert raw(draft_path) == raw(next(f for f in builtin_files() if f.name == f"{gid.lower()}.toml"))
    assert components(draft) == components(expected)
    assert draft.code_set_recovered is expected.code_set_recovered is True


@pytest.mark.skipif(not SEEDS, reason="../shared/seeds is not beside this checkout")
def test_seeds_import_as_the_builtin_entries_and_pass_check(tmp_path):
    out, result = imported(tmp_path, *SEEDS)
    assert sorted(p.name for p in out.iterdir()) == ["ipg319.toml", "ipg366.toml"]
    assert_reproduces(out / "ipg319.toml", "IPG319")
    assert_reproduces(out / "ipg366.toml", "IPG366")
    checked = run_cli("catalogue", "check", str(out))
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == "OK: 2 entries in 1 path(s), no problems."
    assert "IPG319: checked in place of the built-in ipg319.toml" in checked.stdout
    # The id is not printed on the seed pages: the person is told how it was found.
    assert "  review: confirm the id IPG319 (matched by title to the built-in entry)" in result.stdout


@pytest.mark.skipif(not SEEDS, reason="../shared/seeds is not beside this checkout")
def test_seed_notes_become_roles_requirements_and_uncertain_lines(tmp_path):
    out, _ = imported(tmp_path, *SEEDS)
    ipg319, _ = entry(out / "ipg319.toml")
    ipg366, _ = entry(out / "ipg366.toml")
    assert "V55 levels of spine come second" in ipg319.notes and "Y53 image control" in ipg366.notes
    # Y53: required for a percutaneous procedure, a warning otherwise; both inferred, and said so.
    assert any(u.startswith("Y53.- is required [I]") for u in ipg319.uncertain)
    assert any(u.startswith("Y53.- is conditional [I]") for u in ipg366.uncertain)
    # No date on either page: flagged, never presented as read.
    assert ipg319.unverified == ipg366.unverified == ("published",)
    assert ipg319.lineage == "replaced by IPG544, January 2016"  # known from the built-in IPG544


@pytest.mark.parametrize(
    "page, gid",
    [("ipg319_list.html", "IPG319"), ("ipg319_table.html", "IPG319"),
     ("ipg366_coding_recommendations.html", "IPG366"), ("ipg366_icd10_beside.html", "IPG366")],
)
def test_page_variants_import_the_same(tmp_path, page, gid):
    out, _ = imported(tmp_path, PAGES / page)
    assert_reproduces(out / f"{gid.lower()}.toml", gid)
    assert run_cli("catalogue", "check", str(out)).exit_code == 0


def test_grouped_alternatives_and_codes_of_a_further_operation(tmp_path):
    out, result = imported(tmp_path, PAGES / "ipg193_alternatives.txt")
    draft, _ = entry(out / "ipg193.toml")
    expected, _ = builtin("IPG193")
    audited = lambda g: [(c.role, tuple(map(str, c.patterns))) for c in g.code_sets[0].components  # noqa: E731
                         if c.role in ("index", "approach")]
    # "One of ...", "Plus ... from:" and "Or one of ...": one index and one approach component.
    assert audited(draft) == audited(expected)
    assert (draft.published.text, draft.unverified, draft.replaces) == ("2006-11", (), ("IPG16",))
    # The lymph node dissection is a further operation, and its own approach code is not the index's.
    companions = [c for c in draft.code_sets[0].components if c.role == "companion"]
    assert [(str(c), c.requirement) for c in companions] == [("T85.9", "conditional")]
    assert any(u.startswith("Y76.8 follows the further operation T85.9") for u in draft.uncertain)
    # The built-in entry decides what identifies the procedure; the draft leaves that to a person.
    assert "M61.8 is a generic code" in result.stdout


def test_one_code_set_per_heading_in_the_block(tmp_path):
    out, _ = imported(tmp_path, PAGES / "ipg421_two_approaches.html")
    draft, _ = entry(out / "ipg421.toml")
    expected, _ = builtin("IPG421")
    codes = lambda g: [[(c.role, tuple(map(str, c.patterns))) for c in cs.components] for cs in g.code_sets]  # noqa: E731
    assert codes(draft) == codes(expected)
    assert [cs.name for cs in draft.code_sets] == ["transluminal approach", "transapical / transventricular approach"]
    assert draft.replaces == ("IPG266",) and draft.replaced_by == "IPG586"


def test_codes_run_together_on_one_line(tmp_path):
    page = tmp_path / "ipg136.txt"
    page.write_text("Coding recommendations\nM02.- Total excision of kidney\n"
                    "Y75.2 Laparoscopic approach to abdominal cavity NEC orY75.4 Hand assisted minimal access "
                    "approach to abdominal cavity\n")
    out, result = imported(tmp_path, page)
    draft, titles = entry(out / "ipg136.toml")
    assert [str(c) for c in draft.code_sets[0].components] == ["M02.-", "Y75.2 or Y75.4"]
    assert "M02.- is a category" in result.stdout  # which 'catalogue check' refuses as an index code
    assert "index code M02.- is a category" in run_cli("catalogue", "check", str(out)).stderr
    assert titles["Y752"] == "Laparoscopic approach to abdominal cavity NEC"
    page.write_text("Coding recommendations\nA70.4 Insertion of neurostimulator\n")  # a title ending in "or"
    out, _ = imported(tmp_path / "again", page)
    assert entry(out / "ipg136.toml")[1]["A704"] == "Insertion of neurostimulator"


@pytest.mark.parametrize("site_line", ["Site code from Chapter Z", "Plus a Chapter 'Z' code to identify the body site treated"])
def test_site_named_in_words(tmp_path, site_line):
    page = tmp_path / "ipg155.txt"
    page.write_text(f"Coding recommendations\nS07.1 Photodynamic therapy of skin of whole body\n{site_line}\n")
    out, _ = imported(tmp_path, page)
    draft, _ = entry(out / "ipg155.toml")
    assert [(c.role, str(c)) for c in draft.code_sets[0].components] == [
        ("index", "S07.1"), ("site", "any Chapter Z code")]


def test_codes_named_in_a_note_are_conditional(tmp_path):
    page = tmp_path / "ipg349.txt"
    page.write_text(
        "NICE has issued guidance to the NHS in England, Wales, Scotland and Northern Ireland on occlusion of the "
        "left atrial appendage. \nOPCS4.6 Code(s)\nK62.5 Percutaneous transluminal occlusion of left atrial appendage\n"
        "Y53.- Approach to organ under image control\n"
        "Note: U20.2 Transoesophageal echocardiography is also assigned when TOE is used during the procedure.\n"
        "Note: Y53.4 Approach to organ under fluoroscopic control can be assigned in addition if fluoroscopy is used.\n"
        "Codes within category Y53.- are used as secondary codes to classify interventions that are percutaneous "
        "and require some form of image control.\n")
    out, _ = imported(tmp_path, page)
    draft, titles = entry(out / "ipg349.toml")
    assert [(c.role, str(c), c.requirement) for c in draft.code_sets[0].components] == [
        ("index", "K62.5", "required"), ("companion", "U20.2", "conditional"),
        ("approach", "Y53.-", "conditional")]  # Y53.4 lies within Y53.-: one component, not two
    assert titles["U202"] == "Transoesophageal echocardiography"


def test_icd10_block_beside_is_recorded_not_audited(tmp_path):
    out, _ = imported(tmp_path, PAGES / "ipg366_icd10_beside.html")
    draft, titles = entry(out / "ipg366.toml")
    diagnosis = [c for c in draft.code_sets[0].components if c.role == "diagnosis"]
    assert [c.icd10 for c in diagnosis] == [("M51.2", "M54.5")]
    assert "M51.2" not in titles  # ICD-10 titles are not OPCS-4 titles


def test_script_in_a_saved_page_is_not_read(tmp_path):
    out, _ = imported(tmp_path, PAGES / "ipg319_list.html")
    assert "V99.9" not in (out / "ipg319.toml").read_text()


def test_page_that_cannot_be_coded_imports_without_a_code_set(tmp_path):
    out, _ = imported(tmp_path, PAGES / "ipg403_not_codable.txt")
    draft, _ = entry(out / "ipg403.toml")
    assert draft.code_sets == () and draft.code_set_recovered is False
    assert "cannot be expressed in the OPCS-4 classification by a single code" in draft.notes
    assert "case by case" in draft.notes
    assert run_cli("catalogue", "check", str(out)).exit_code == 0


NEW_PAGE = """\
<html><head><link rel="canonical" href="https://www.nice.org.uk/guidance/ipg9001"></head><body>
<h1>Sample ablation of the example organ</h1>
<p>Interventional procedures guidance Published: 3 March 2031</p>
<p>This guidance replaces interventional procedure guidance 545 (published January 2016).</p>
<h2>Coding recommendations</h2>
<ul>
<li>One of the following OPCS-4 codes is selected as appropriate:</li>
<li>J12.8 Other specified destruction of lesion of liver</li>
<li>J12.4 Percutaneous radiofrequency ablation of lesion of liver</li>
<li>Y53.2 Approach to organ under ultrasonic control (if used)</li>
</ul>
<h2>Your responsibility</h2></body></html>
"""


def test_new_guidance_page(tmp_path):
    page = tmp_path / "saved.html"
    page.write_text(NEW_PAGE)
    out, result = imported(tmp_path, page)
    draft, titles = entry(out / "ipg9001.toml")
    assert (draft.title, draft.published.text, draft.unverified) == ("Sample ablation of the example organ", "2031-03-03", ())
    assert draft.replaces == ("IPG545",)
    assert components(draft) == [("all approaches", [
        ("index", ("J12.8", "J12.4"), (), "required", True, "qualifiers", ()),
        ("approach", ("Y53.2",), (), "conditional", False, "qualifiers", ()),
    ])]
    assert titles["Y532"] == "Approach to organ under ultrasonic control"
    # What a person must still do: the generic index code, and the replaced built-in entry.
    assert "J12.8 is a generic code" in result.stdout
    assert "IPG545 is built in and does not name IPG9001 as its replacement" in result.stdout
    # ...and check says the same: the built-in IPG545 must be updated with it.
    checked = run_cli("catalogue", "check", str(out))
    assert checked.exit_code == 2 and "IPG545 does not name IPG9001 as replaced_by" in checked.stderr


@pytest.mark.parametrize(
    "name, text, message",
    [("opening.html", "<html><body><p>Opening hours</p></body></html>", "no coding block found"),
     ("page.txt", "Coding recommendations\nV40.1 Non-rigid stabilisation of spine\n", "no guidance id on the page"),
     ("ipg440.html", "<html><body><p>Foam sclerotherapy.</p><p>Coding and clinical classification codes for this "
                     "guidance</p></body></html>", "the codes are on a separate page"),
     ("missing.html", None, "cannot read the page")],
)
def test_pages_that_cannot_be_imported_are_one_line_errors(tmp_path, name, text, message):
    page = tmp_path / name
    if text is not None:
        page.write_text(text)
    result = run_cli("catalogue", "import", str(page), "--to", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr and str(page) in result.stderr
    assert not (tmp_path / "out").exists()


def test_existing_drafts_are_not_overwritten_without_force(tmp_path):
    out, _ = imported(tmp_path, PAGES / "ipg319_list.html")
    again = run_cli("catalogue", "import", str(PAGES / "ipg319_list.html"), "--to", str(out))
    assert again.exit_code == 2 and "already exists" in again.stderr
    forced = run_cli("catalogue", "import", str(PAGES / "ipg319_list.html"), "--to", str(out), "--force")
    assert forced.exit_code == 0


def test_id_option_names_the_guidance_of_one_page(tmp_path):
    page = tmp_path / "page.txt"
    page.write_text("Coding recommendations\nV40.1 Non-rigid stabilisation of spine\n")
    result = run_cli("catalogue", "import", str(page), "--to", str(tmp_path / "out"), "--id", "ipg9002")
    assert result.exit_code == 0 and (tmp_path / "out" / "ipg9002.toml").exists()
    both = run_cli("catalogue", "import", str(page), str(page), "--id", "IPG9002")
    assert both.exit_code == 2 and "single PAGE" in both.stderr
