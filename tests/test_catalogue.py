"""The guidance catalogue: built-in content, and precise messages for broken entries."""

import textwrap
from datetime import date

import pytest

from audit.catalogue import CatalogueError, load_catalogue
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_seed_guidance_exactly_as_published(catalogue):
    ipg319 = catalogue.guidance["IPG319"].code_sets[0]
    assert [(c.role, str(c), c.requirement) for c in ipg319.components] == [
        ("index", "V52.2", "required"),
        ("levels", "V55.-", "required"),
        ("method", "Y10.2", "required"),
        ("approach", "Y53.-", "required"),
        ("site", "any Chapter Z code", "required"),
    ]
    assert [str(p) for p in ipg319.components[-1].recommended] == ["Z99.-"]
    ipg366 = catalogue.guidance["IPG366"].code_sets[0]
    assert [(c.role, str(c), c.requirement) for c in ipg366.components] == [
        ("index", "V40.1", "required"),
        ("levels", "V55.-", "required"),
        ("approach", "Y53.-", "conditional"),
        ("site", "any Chapter Z code", "required"),
    ]


@pytest.mark.parametrize(
    "old, new, replaced_on",
    [("IPG81", "IPG319", date(2009, 1, 1)), ("IPG319", "IPG544", date(2016, 1, 1)),
     ("IPG183", "IPG366", date(2010, 11, 1))],
)
def test_lineage(catalogue, old, new, replaced_on):
    assert catalogue.guidance[old].replaced_by == new
    assert old in catalogue.guidance[new].replaces
    assert catalogue.guidance[old].replaced_on.start == replaced_on


def test_every_reference_guidance_is_present(catalogue):
    with_code_sets = {"IPG319", "IPG366", "IPG365", "IPG306", "IPG387", "IPG179", "IPG327", "IPG211",
                      "IPG406", "IPG214", "IPG444", "IPG421", "IPG436", "IPG352", "IPG78", "IPG193",
                      "IPG424", "IPG8"}
    lineage_only = {"IPG81", "IPG544", "IPG183", "IPG83", "IPG545", "IPG165", "IPG100", "IPG92", "IPG220",
                    "IPG266", "IPG237", "IPG16", "IPG553", "IPG270", "IPG403"}
    assert with_code_sets <= {g.id for g in catalogue.auditable()}
    assert lineage_only <= set(catalogue.guidance) - {g.id for g in catalogue.auditable()}
    assert all(g.sources for g in catalogue.guidance.values())


def test_catalogue_covers_at_least_60_guidances_with_code_sets(catalogue):
    from audit.catalogue import coverage

    covered = coverage(catalogue)
    assert covered.with_code_sets == len(catalogue.auditable()) >= 60
    assert covered.with_code_sets + covered.without_code_set == covered.total == len(catalogue.guidance)
    assert sum(covered.chapters.values()) >= covered.with_code_sets  # an entry may span chapters
    assert set(covered.chapters) >= {"A", "B", "E", "G", "H", "J", "K", "L", "M", "Q", "V", "W"}


# Entries whose generic index code issue 10's review of the existing entries decides (IPG319 by
# the method it excludes, IPG352 and IPG387 by their own evidence); every other entry must say
# what identifies the procedure when its index code is generic.
_INDEX_UNDER_REVIEW = {"IPG319", "IPG352", "IPG387"}


def _generic(pattern, titles) -> bool:
    title = titles.get(pattern.prefix if pattern.kind == "exact" else str(pattern), "")
    return pattern.kind != "exact" or pattern.prefix.endswith("8") or title.rstrip(" ]").endswith(("NEC", "NOC"))


def test_no_match_on_a_generic_index_code_alone():
    import tomllib

    from audit.catalogue import builtin_files, parse_guidance

    unidentified = []
    for path in builtin_files():
        guidance, titles, _ = parse_guidance(tomllib.loads(path.read_text()), path.name)
        if guidance.id in _INDEX_UNDER_REVIEW:
            continue
        for code_set in guidance.code_sets:
            generic = [p for p in code_set.index.patterns if _generic(p, titles)]
            evidence = [c for c in code_set.components if c.identifies and c.role != "index"]
            if generic and not evidence:
                unidentified.append(f"{guidance.id} {code_set.name}: {', '.join(map(str, generic))}")
    assert unidentified == []


@pytest.mark.parametrize(
    "old, new, replaced_on",
    [("IPG421", "IPG586", "2017-07-26"), ("IPG424", "IPG756", None), ("IPG444", "IPG664", "2019-11"),
     ("IPG406", "IPG553", "2016-05"), ("IPG20", "IPG166", "2006-04"), ("IPG447", "IPG478", "2014-02")],
)
def test_replacements_brought_up_to_date(catalogue, old, new, replaced_on):
    assert catalogue.guidance[old].replaced_by == new and old in catalogue.guidance[new].replaces
    got = catalogue.guidance[old].replaced_on
    assert (got.text if got else None) == replaced_on
    if replaced_on:  # read in a source, so not flagged as unverified
        assert "replaced_on" not in catalogue.guidance[old].unverified
        assert catalogue.guidance[new].published.text == replaced_on


@pytest.mark.parametrize(
    "gid, title",
    [("IPG20", "Balloon kyphoplasty for vertebral compression fractures"),
     ("IPG166", "Balloon kyphoplasty for vertebral compression fractures"),
     ("IPG78", "Balloon valvuloplasty for aortic valve stenosis in adults and children"),
     ("IPG421", "Transcatheter aortic valve implantation for aortic stenosis"),
     ("IPG447", "Electrochemotherapy for primary basal cell carcinoma and primary squamous cell carcinoma"),
     ("IPG553", "Microwave ablation for treating liver metastases")],
)
def test_titles_as_nice_gives_them(catalogue, gid, title):
    assert catalogue.guidance[gid].title == title


@pytest.mark.parametrize("gid", ["IPG88", "IPG333", "IPG270", "IPG570"])
def test_titles_not_found_say_so(catalogue, gid):
    g = catalogue.guidance[gid]
    assert g.title.startswith("Title not recorded") and any("not found" in u for u in g.uncertain)


def test_official_code_titles_and_unverified_ones(catalogue):
    from audit.catalogue import UNVERIFIED_TITLE

    assert catalogue.titles["Y534"] == "Approach to organ under fluoroscopic control"
    assert catalogue.titles["Y532"] == "Approach to organ under ultrasonic control"
    assert catalogue.titles["Y537"] == "Approach to organ under magnetic resonance imaging control"
    assert catalogue.titles["Z99.-"] == "Intervertebral disc" + UNVERIFIED_TITLE


def test_a_code_has_one_title_across_entries():
    """Titles are pooled for the reports, so two entries must not title one code differently."""
    import tomllib

    from audit.catalogue import builtin_files
    from audit.codes import parse_pattern

    titles: dict[str, set[str]] = {}
    for path in builtin_files():
        for spelling, title in tomllib.loads(path.read_text()).get("titles", {}).items():
            titles.setdefault(str(parse_pattern(spelling)), set()).add(title)
    assert {code: t for code, t in titles.items() if len(t) > 1} == {}


def test_ipg366_conditional_image_control_is_an_inferred_decision(catalogue):
    assert any(u.startswith("Y53.- is conditional") and "[I]" in u for u in catalogue.guidance["IPG366"].uncertain)


GOOD = """\
id = "LOCAL1"
title = "A local procedure"
url = "https://example.org/local1"
published = "2020-04"
code_set_recovered = true
sources = ["local coding policy"]

[[code_sets]]
components = [{ role = "index", codes = ["W37.1"] }, { role = "site", codes = ["chapter:Z"] }]
"""


def check(tmp_path, text):
    path = tmp_path / "local.toml"
    path.write_text(textwrap.dedent(text))
    return run_cli("catalogue", "check", str(path)), path


def test_check_accepts_a_good_entry(tmp_path):
    result, _ = check(tmp_path, GOOD)
    assert (result.exit_code, result.stdout.strip()) == (0, "OK: 1 entry in 1 path(s), no problems.")


@pytest.mark.parametrize(
    "change, message",
    [
        (('codes = ["W37.1"]', 'codes = ["W37"]'),
         "LOCAL1: code_sets[0].components[0].codes: 'W37' is not an OPCS-4 code (V52.2), category (V55.-) or chapter (chapter:Z)"),
        (('role = "site"', 'role = "place"'),
         "LOCAL1: code_sets[0].components[1].role: must be one of index, levels, method, approach, site, companion, diagnosis"),
        (('published = "2020-04"', 'published = "2020-13"'),
         "LOCAL1: published: '2020-13' is not a real date (yyyy, yyyy-mm or yyyy-mm-dd)"),
        (('published = "2020-04"', 'published = "Apr 2020"'),
         "LOCAL1: published: must be written yyyy, yyyy-mm or yyyy-mm-dd"),
        (('title = "A local procedure"\n', ''), "LOCAL1: title: missing"),
        (('sources = ["local coding policy"]', 'sources = []'), "LOCAL1: sources: cite at least one source"),
        (('{ role = "index", codes = ["W37.1"] }, ', ''),
         'LOCAL1: code_sets[0].components: must have exactly one component with role = "index"'),
        (('code_set_recovered = true', 'code_set_recovered = "yes"'), "LOCAL1: code_set_recovered: must be true or false"),
        (('code_set_recovered = true', 'code_set_recovered = true\nreplaced_by = "IPG999"'),
         'LOCAL1: replaced_on: missing: give the date, or "unknown"'),
        (('code_set_recovered = true', 'code_set_recovered = true\nreplaced_by = "IPG319"\nreplaced_on = "2021"'),
         "LOCAL1: replaced_by: IPG319 does not list LOCAL1 in replaces"),
        (('url = "https://example.org/local1"', 'url = "example.org"'), "LOCAL1: url: must be an http(s) address"),
        (('code_set_recovered = true', 'code_set_recovered = true\ncolour = "red"'), "LOCAL1: colour: unknown field"),
        (('{ role = "site", codes = ["chapter:Z"] }', '{ role = "site", codes = ["chapter:Z"], requirement = "maybe" }'),
         "LOCAL1: code_sets[0].components[1].requirement: must be one of required, conditional, optional"),
        (('code_set_recovered = true', 'code_set_recovered = true\nunverified = ["title"]'),
         "LOCAL1: unverified[0]: must name one of published, replaced_on"),
        (('id = "LOCAL1"', 'id = [1]'), "?: id: missing or not a guidance id such as IPG319"),
    ],
)
def test_check_rejects_malformed_entries(tmp_path, change, message):
    result, path = check(tmp_path, GOOD.replace(*change))
    assert result.exit_code == 2
    assert f"nice-audit: error: {path}: {message}" in result.stderr.splitlines()


def test_entry_with_a_builtin_id_is_checked_in_its_place_but_never_run(tmp_path):
    result, path = check(tmp_path, GOOD.replace('id = "LOCAL1"', 'id = "IPG319"'))
    # Checked as an update of ipg319.toml: so the lineage the built-ins record must still agree.
    assert result.exit_code == 2
    assert "IPG81: replaced_by: IPG319 does not list IPG81 in replaces" in result.stderr
    with pytest.raises(CatalogueError, match="IPG319: id: already defined in ipg319.toml"):
        load_catalogue([path])
    update = GOOD.replace('id = "LOCAL1"', 'id = "IPG319"').replace('"2020-04"', '"2009"').replace(
        'code_set_recovered = true', 'code_set_recovered = true\nreplaces = ["IPG81"]\nreplaced_by = "IPG544"\nreplaced_on = "2016-01"')
    result, _ = check(tmp_path, update)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("IPG319: checked in place of the built-in ipg319.toml")


def test_check_reports_invalid_toml(tmp_path):
    result, path = check(tmp_path, "id = [\n")
    assert result.exit_code == 2 and result.stderr.startswith(f"nice-audit: error: {path}: not valid TOML")


def test_broken_extra_catalogue_stops_a_run(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace("W37.1", "W3"))
    with pytest.raises(CatalogueError):
        load_catalogue([path])
    result = run_cli("run", "examples", "--catalogue", str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "W3" in result.stderr


def test_user_entry_is_audited(tmp_path):
    from tests.conftest import audit_long, status_of

    path = tmp_path / "local.toml"
    path.write_text(GOOD)
    table = "| episode_id | position | code | procedure_date |\n| E1 | 1 | W371 | 2021-01-01 |"
    result = audit_long(tmp_path, table, catalogue=load_catalogue([path]))
    assert status_of(result, "E1", "LOCAL1") == "non-compliant"
    assert result.findings["rule_id"].to_list() == ["site-missing"]


def test_list_and_show():
    listed = run_cli("catalogue", "list")
    assert listed.exit_code == 0 and any(line.startswith("IPG319 ") for line in listed.stdout.splitlines())
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("IPG")}
    assert "2009 (not verified)" in lines["IPG319"] and "(not verified)" not in lines["IPG544"]
    assert "replaced by IPG553, 2016" not in lines["IPG406"]
    import re

    assert any(re.fullmatch(r"\d+ guidances: \d+ with code sets \(audited\), \d+ recorded without one "
                            r"\(\d+ coded case by case\)\.", line) for line in listed.stdout.splitlines())
    assert "  K Heart: " in listed.stdout and "  V Bones and joints of skull and spine: " in listed.stdout
    shown = run_cli("catalogue", "show", "ipg319")
    assert shown.exit_code == 0 and "replaced by IPG544, January 2016" in shown.stdout
    missing = run_cli("catalogue", "show", "IPG9999")
    assert missing.exit_code == 2 and "no guidance 'IPG9999'" in missing.stderr


def _episode(*codes_: str) -> str:
    rows = [f"| E1 | {n} | {c} | 2021-06-01 |" for n, c in enumerate(codes_, 1)]
    return "\n".join(["| episode_id | position | code | procedure_date |", *rows])


@pytest.mark.parametrize(
    "gid, coded_as_the_page_gives, generic_alone",
    [("IPG367", ["L713", "Y534", "Z966"], ["L713", "Y534"]),
     ("IPG136", ["M021", "Y752"], ["M021"]),
     ("IPG461", ["G448", "Y114"], ["G448"]),
     ("IPG452", ["A701", "Y711", "Z921"], ["A701", "Y711"]),
     ("IPG273", ["E138", "Y761", "Y403", "Y534"], ["E138", "Y761", "Y534"]),
     ("IPG330", ["A331", "Z044"], ["A331"])],
)
def test_new_entries_audit_as_their_pages_give_them(tmp_path, gid, coded_as_the_page_gives, generic_alone):
    from tests.conftest import audit_long, status_of

    assert status_of(audit_long(tmp_path, _episode(*coded_as_the_page_gives)), "E1", gid) == "compliant"
    # Without the code that identifies the procedure, the generic index code does not match.
    assert status_of(audit_long(tmp_path, _episode(*generic_alone)), "E1", gid) is None


def test_new_entry_reports_a_missing_required_code(tmp_path):
    from tests.conftest import audit_long, findings_of

    result = audit_long(tmp_path, _episode("K131"))  # IPG336 VSD closure without its Y53.4
    assert ("approach-missing", "IPG336", 1, "error") in findings_of(result)
