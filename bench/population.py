"""A deterministic population of native patient records, and the hand-written decision it is measured against.

``generate(n, seed)`` returns ``n`` native records (``elig.records.patient``'s
format, plain dicts as ``json.loads`` gives them) for the criteria of
protocols/NCT06021067.elig, as a screening site would hold them:

* mixed units: creatinine in µmol/L or mg/dL, platelets in 10^9/L or 10^3/µL,
  haemoglobin in g/L or g/dL, bilirubin in µmol/L or mg/dL, weight in kg or lb;
* a history of results, not one: older values of each lab before the newest,
  now and then a result dated after the evaluation date, or one without a date;
* observations named by concept or coded only (LOINC), conditions coded in
  ICD-10-CM or SNOMED CT, medications in ATC;
* values exactly on a threshold (ANC 1.5, PLT 80, HGB 80 g/L, LVEF 50 %, ECOG 3,
  bilirubin at 1.5 × ULN, transaminases at 2.5 × ULN, creatinine 1.5 mg/dL,
  18th and 76th birthdays on the evaluation date, a myocardial infarction on the
  first day of the 6-month window, pneumonitis since exactly 2 months);
* what makes an outcome unknown: stale or missing labs, a unit-less count, a
  value "pending", a haemoglobin of 8.5 written in g/L (implausible), two
  disagreeing results on one day, a birth date known only to the year, sex not
  recorded (sex-specific ULNs and thresholds), a pneumonitis without a grade, an
  infarction dated only to the month, missing attestations;
* transaminases without a reference range (the sex-specific default ULN), a
  refuted chronic bronchitis, stopped anticoagulants, recent growth factors.

``handwritten(record)`` decides the same 32 criteria on the same dict as a
careful programmer would by hand (newest usable value in the window, unit
conversions, Cockcroft-Gault, ULNs, Kleene logic, partial dates). It is the floor
the benchmarks compare elig to, and its verdicts must agree with elig's.

Both are imported by the benchmarks (``bench/``) and by the tests
(``tests/conftest.py`` puts ``bench/`` on the path). The interface is stable:
``generate(n: int, seed: int) -> list[dict]``; ``AS_OF``; ``PROTOCOL``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocols" / "NCT06021067.elig"
AS_OF = dt.date(2024, 3, 15)
DEFAULT_SEED = 20240315

ATTESTATIONS = {
    # key: the value an eligible patient has
    "ECG normal, or abnormal without clinical significance": True,
    "life expectancy of at least 6 months": True,
    "informed consent": True,
    "unwilling or unable to use effective contraception": False,
    "severe lung infection": False,
    "uncontrolled severe systemic disease": False,
    "previous participation in a stem cell clinical study": False,
    "investigator judges the participant unsuitable": False,
}

# LOINC codes a record may carry instead of a concept name (from elig/data/vocabulary.yaml).
LOINC = {"body weight": "29463-7", "ECOG": "89247-1", "ANC": "751-8", "PLT": "777-3", "HGB": "718-7",
         "TBil": "1975-2", "ALT": "1742-6", "AST": "1920-8", "serum creatinine": "2160-0", "INR": "6301-6",
         "PT": "5902-2", "LVEF": "10230-1"}
CONDITION_CODES = {  # name: (system, code) of a coded entry
    "radiation pneumonitis": ("ICD-10-CM", "J70.0"),
    "myocardial infarction": ("SNOMED CT", "22298006"),
    "chronic bronchitis": ("ICD-10-CM", "J42"),
}
ANTICOAGULANT_ATC = ("ATC", "B01AA03")  # warfarin


def _day(days_before: int) -> str:
    return (AS_OF - dt.timedelta(days=days_before)).isoformat()


def _years_before(years: int, days: int = 0) -> str:
    return (AS_OF.replace(year=AS_OF.year - years) + dt.timedelta(days=days)).isoformat()


# ---------------------------------------------------------------- population
def generate(n: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """``n`` native patient records, the same for the same ``seed``."""
    rng = random.Random(seed)
    return [_patient(rng, i) for i in range(n)]


def _patient(rng: random.Random, i: int) -> dict:
    r = rng.random
    sex = rng.choice(["male", "female"]) if r() > 0.02 else None
    age_kind = r()
    if age_kind < 0.01:
        birth = _years_before(18)  # 18th birthday today: 18
    elif age_kind < 0.02:
        birth = _years_before(76, 1)  # 76th birthday tomorrow: still 75
    elif age_kind < 0.03:
        birth = str(AS_OF.year - rng.randint(30, 70))  # known only to the year: the age is undecided
    else:
        birth = (AS_OF - dt.timedelta(days=rng.randint(19 * 365, 78 * 365))).isoformat()
    lab_day = rng.choice([1, 2, 3, 4, 5, 6, 7]) if r() > 0.04 else rng.choice([8, 10, 20])  # 4% stale
    obs: list[dict] = []

    def lab(name: str, value, unit: str | None, day: int, **extra) -> None:
        entry = {"concept": name} if r() > 0.15 else {"codes": [f"LOINC:{LOINC[name]}"]}
        entry["value"] = value
        if unit is not None:
            entry["unit"] = unit
        entry["date"] = _day(day)
        entry.update(extra)
        obs.append(entry)

    def history(name: str, make, days: int = lab_day, window: int = 7) -> None:
        """Older results first (as records are kept), then the newest."""
        for _ in range(rng.choice([0, 0, 1, 2])):
            value, unit, extra = make()
            lab(name, value, unit, days + rng.randint(window + 1, 120), **extra)
        roll = r()
        if roll < 0.03:
            return  # never measured
        value, unit, extra = make()
        if roll < 0.04:
            lab(name, value, unit, -rng.randint(1, 5), **extra)  # dated after the evaluation date
            value, unit, extra = make()
        lab(name, value, unit, days, **extra)

    weight = rng.uniform(45, 110)
    history("body weight", lambda: ((round(weight / 0.45359237, 1), "lb", {}) if r() < 0.3
                                    else (round(weight, 1), "kg", {})))
    ecog_day = rng.randint(1, 35)
    history("ECOG", lambda: (rng.choice([0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 4]), None, {}), ecog_day, 30)

    def anc():
        roll = r()
        if roll < 0.03:
            return 1.5, "10^9/L", {}  # on the threshold
        if roll < 0.04:
            return round(rng.uniform(1.3, 6.0), 2), None, {}  # a count without its unit: unreadable
        if roll < 0.05:
            return "pending", "10^9/L", {}
        return round(rng.uniform(1.3, 6.0), 2), "10^9/L", {}
    history("ANC", anc)

    def plt():
        if r() < 0.03:
            return 80, rng.choice(["10^9/L", "10^3/µL"]), {}
        return round(rng.uniform(70, 400)), rng.choice(["10^9/L", "10^3/µL"]), {}
    history("PLT", plt)

    def hgb():
        roll = r()
        if roll < 0.03:
            return (8.0, "g/dL", {}) if r() < 0.5 else (80, "g/L", {})
        if roll < 0.04:
            return round(rng.uniform(7.5, 16), 1), "g/L", {}  # g/dL value written as g/L: implausible
        value = rng.uniform(76, 160)
        return (round(value / 10, 1), "g/dL", {}) if r() < 0.5 else (round(value), "g/L", {})
    history("HGB", hgb)

    def tbil():
        roll = r()
        if roll < 0.03:
            return 1.8, "mg/dL", {"reference_range": {"high": 1.2, "unit": "mg/dL"}}  # exactly 1.5 × ULN
        if roll < 0.5:
            return round(rng.uniform(4, 34), 1), "µmol/L", {"reference_range": {"low": 3, "high": 21, "unit": "µmol/L"}}
        return round(rng.uniform(0.2, 1.9), 2), "mg/dL", {"reference_range": {"high": 1.2, "unit": "mg/dL"}}
    history("TBil", tbil)

    for name in ("ALT", "AST"):
        def transaminase():
            roll = r()
            if roll < 0.03:
                return 100, "U/L", {"reference_range": {"high": 40, "unit": "U/L"}}  # exactly 2.5 × ULN
            if roll < 0.13:
                return round(rng.uniform(8, 105)), "U/L", {}  # no reference range: the default ULN, by sex
            return round(rng.uniform(8, 105)), "U/L", {"reference_range": {"high": 40, "unit": "U/L"}}
        history(name, transaminase)

    def creatinine():
        roll = r()
        if roll < 0.03:
            return rng.choice([1.4, 1.5]), "mg/dL", {}  # the sex-specific thresholds of E8
        if roll < 0.5:
            return round(rng.uniform(45, 135), 1), "µmol/L", {}
        return round(rng.uniform(0.5, 1.55), 2), "mg/dL", {}
    history("serum creatinine", creatinine)
    if r() < 0.01:  # a second, disagreeing creatinine on the same day: neither may win
        lab("serum creatinine", round(rng.uniform(0.5, 1.55), 2), "mg/dL", lab_day)

    if r() > 0.05:  # 5% without a coagulation test
        history("INR", lambda: (round(rng.uniform(0.8, 1.8), 2), None, {}))
        history("PT", lambda: (round(rng.uniform(10, 22), 1), "s", {"reference_range": {"high": 13.5, "unit": "s"}}))

    def lvef():
        return (50 if r() < 0.03 else round(rng.uniform(40, 72))), "%", {}
    history("LVEF", lvef, rng.randint(1, 35), 30)
    if r() < 0.005:
        obs.append({"concept": "LVEF", "value": 60, "unit": "%"})  # undated: never used

    # conditions
    roll = r()
    if roll < 0.02:
        onset = 60  # since exactly 2 months: not "less than 2 months"
    elif roll < 0.04:
        onset = 59
    else:
        onset = rng.randint(10, 45) if r() < 0.9 else rng.randint(75, 120)
    rp = _coded_or_named(rng, "radiation pneumonitis", {"onset": _day(onset)})
    rp["status"] = "resolved" if r() < 0.03 else "active"
    if r() > 0.03:
        rp["grade"] = rng.choice([1, 2, 2, 2, 3, 3, 3, 4, "II", "Grade 3"])
    conditions = [rp]
    if r() < 0.06:
        kind = r()
        if kind < 0.2:
            onset_text = _day(rng.choice([182, 183]))  # 2023-09-15 opens the window; 09-14 is before it
        elif kind < 0.35:
            onset_text = "2023-09"  # the month straddles the start of the window: unknown
        else:
            onset_text = _day(rng.choice([rng.randint(20, 150), rng.randint(220, 400)]))
        mi = _coded_or_named(rng, "myocardial infarction", {"onset": onset_text, "status": "resolved"})
        if len(onset_text) == 10:
            mi["abatement"] = (dt.date.fromisoformat(onset_text) + dt.timedelta(days=10)).isoformat()
        conditions.append(mi)
    if r() < 0.04:
        cb = _coded_or_named(rng, "chronic bronchitis", {"onset": _day(rng.randint(400, 3000))})
        if r() < 0.3:
            cb["verification"] = "refuted"
        conditions.append(cb)

    procedures = []
    if r() < 0.96:
        procedures.append({"concept": "chest radiotherapy", "start": _day(onset + 60), "end": _day(onset + 20)})
    medications = []
    roll = r()
    if roll < 0.05:
        med = {"concept": "anticoagulant"} if r() < 0.5 else {"codes": ["ATC:" + ANTICOAGULANT_ATC[1]]}
        medications.append({**med, "start": _day(200), "status": "active"})
    elif roll < 0.08:
        medications.append({"concept": "anticoagulant", "start": _day(200), "end": _day(100), "status": "completed"})
    roll = r()
    if roll < 0.02:
        medications.append({"concept": "hematopoietic growth factor", "start": _day(3)})  # within 7 days
    elif roll < 0.04:
        medications.append({"concept": "hematopoietic growth factor", "start": _day(40), "end": _day(30)})

    attestations = {}
    for key, good in ATTESTATIONS.items():
        roll = r()
        if roll < 0.01:
            continue  # not recorded yet
        attestations[key] = (not good) if roll < 0.015 else good
    record = {"id": f"bench-{i:06d}", "birth_date": birth, "observations": obs,
              "conditions": conditions, "procedures": procedures, "medications": medications,
              "attestations": attestations}
    if sex is not None:
        record["sex"] = sex
    if sex == "female":
        if r() > 0.02:  # sometimes not recorded: unknown
            record["pregnant"] = r() < 0.01
        record["lactating"] = False
    return record


def _coded_or_named(rng: random.Random, name: str, fields: dict) -> dict:
    if rng.random() < 0.2:
        system, code = CONDITION_CODES[name]
        return {"codes": [{"system": system, "code": code}], **fields}
    return {"concept": name, **fields}


# ---------------------------------------------------------------- the hand-written decision
CREAT_MGDL_PER_UMOL = 113.12 / 10_000  # creatinine's molar mass: 1 µmol/L = 0.011312 mg/dL
TBIL_MGDL_PER_UMOL = 584.66 / 10_000
LB = 0.45359237
REL = 1e-9
PLAUSIBLE = {"body weight": (2, 400), "ECOG": (0, 5), "ANC": (0, 100), "PLT": (0, 2000), "HGB": (10, 260),
             "TBil": (0, 50), "ALT": (0, 20000), "AST": (0, 20000), "serum creatinine": (0.1, 30),
             "INR": (0.5, 15), "PT": (5, 200), "LVEF": (5, 95)}
TO_CANONICAL = {  # (concept, unit) -> factor to the canonical unit; a unit not listed cannot be read
    ("body weight", "kg"): 1.0, ("body weight", "lb"): LB, ("ECOG", None): 1.0, ("ANC", "10^9/L"): 1.0,
    ("PLT", "10^9/L"): 1.0, ("PLT", "10^3/µL"): 1.0, ("HGB", "g/L"): 1.0, ("HGB", "g/dL"): 10.0,
    ("TBil", "mg/dL"): 1.0, ("TBil", "µmol/L"): TBIL_MGDL_PER_UMOL, ("ALT", "U/L"): 1.0, ("AST", "U/L"): 1.0,
    ("serum creatinine", "mg/dL"): 1.0, ("serum creatinine", "µmol/L"): CREAT_MGDL_PER_UMOL, ("INR", None): 1.0,
    ("PT", "s"): 1.0, ("LVEF", "%"): 1.0,
}
DEFAULT_ULN = {"TBil": 1.2, "INR": 1.1, "PT": 13.5, "ALT": {"male": 40, "female": 35}, "AST": {"male": 40, "female": 35}}
NAME_OF_CODE = {f"LOINC:{code}": name for name, code in LOINC.items()}
NAME_OF_CODE.update({f"{s}:{c}": name for name, (s, c) in CONDITION_CODES.items()})
NAME_OF_CODE["ATC:" + ANTICOAGULANT_ATC[1]] = "anticoagulant"


def _and(*xs):
    if any(x is False for x in xs):
        return False
    if any(x is None for x in xs):
        return None
    return True


def _or(*xs):
    if any(x is True for x in xs):
        return True
    if any(x is None for x in xs):
        return None
    return False


def _ge(a, b):
    return a >= b or math.isclose(a, b, rel_tol=REL)


def _le(a, b):
    return a <= b or math.isclose(a, b, rel_tol=REL)


def _gt(a, b):
    return a > b and not math.isclose(a, b, rel_tol=REL)


def _months_before(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.month - 1 - months, 12)
    return d.replace(year=d.year + y, month=m + 1)


def _span(text: str | None) -> tuple[dt.date, dt.date] | None:
    """A date, month or year as (earliest, latest)."""
    if text is None:
        return None
    if len(text) == 10:
        d = dt.date.fromisoformat(text)
        return d, d
    if len(text) == 7:
        first = dt.date.fromisoformat(text + "-01")
        after = _months_before(first, -1)
        return first, after - dt.timedelta(days=1)
    year = int(text)
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


def _name(entry: dict) -> str | None:
    if entry.get("concept"):
        return entry["concept"]
    for code in entry.get("codes", ()):
        key = code if isinstance(code, str) else f"{code['system']}:{code['code']}"
        if key in NAME_OF_CODE:
            return NAME_OF_CODE[key]
    return None


def handwritten(p: dict) -> tuple[str, list]:
    """Decide NCT06021067 for one native record, as a programmer would by hand."""
    as_of = AS_OF
    sex = p.get("sex")
    female = sex == "female"
    labs: dict[str, list[dict]] = {}
    undated = set()  # an undated result may be the newest: that lab cannot decide
    for o in p["observations"]:
        if o.get("date") is not None:
            labs.setdefault(_name(o), []).append(o)
        else:
            undated.add(_name(o))

    def reading(name, o):
        """The value in the canonical unit, or None when it cannot be used."""
        v = o.get("value")
        if not isinstance(v, (int, float)):
            return None
        factor = TO_CANONICAL.get((name, o.get("unit")))
        if factor is None:
            return None
        v = v * factor
        lo, hi = PLAUSIBLE[name]
        return v if lo <= v <= hi else None

    def newest(name, days):
        """(canonical value, observation) of the newest result in the window; (None, obs) when unusable."""
        past = [o for o in labs.get(name, ()) if o["date"] <= as_of.isoformat()]
        if not past or name in undated:
            return None, None
        when = max(o["date"] for o in past)
        if (as_of - dt.date.fromisoformat(when)).days > days:
            return None, None
        same = [o for o in past if o["date"] == when]  # in record order; the first is read
        v = reading(name, same[0])
        for twin in same[1:]:
            w = reading(name, twin)
            if v is not None and w is not None and not math.isclose(v, w, rel_tol=REL):
                return None, same[0]  # two results of one day that disagree
        return v, same[0]

    def value(name, days=7):
        return newest(name, days)[0]

    def uln_test(name, factor, test):
        v, o = newest(name, 7)
        if v is None:
            return None
        ref = o.get("reference_range")
        if ref and ref.get("high") is not None:
            uln = ref["high"] * TO_CANONICAL[(name, ref.get("unit", o.get("unit")))]
        else:
            uln = DEFAULT_ULN[name]
            if isinstance(uln, dict):
                uln = uln.get(sex)
                if uln is None:
                    return None
        return test(v, factor * uln)

    span = _span(p.get("birth_date"))
    age = None
    if span is not None:
        def years(b):
            return as_of.year - b.year - ((as_of.month, as_of.day) < (b.month, b.day))
        age = years(span[1]) if years(span[0]) == years(span[1]) else None
    att = p.get("attestations", {})

    def attested(key):
        return att.get(key)

    conds: dict[str, list[dict]] = {}
    for c in p.get("conditions", ()):
        if c.get("verification") not in ("refuted", "entered-in-error"):
            conds.setdefault(_name(c), []).append(c)

    def history_of(name):
        out = False
        for c in conds.get(name, ()):
            onset = _span(c.get("onset"))
            if onset is None or onset[1] <= as_of:
                return True
            if onset[0] <= as_of:
                out = None
        return out

    def acute_within(name, months):
        opens = _months_before(as_of, months)
        out = False
        for c in conds.get(name, ()):
            onset = _span(c.get("onset"))
            if onset is None:
                out = _or(out, None)
            elif onset[0] > as_of or onset[1] < opens:
                continue
            elif onset[0] >= opens and onset[1] <= as_of:
                return True
            else:
                out = _or(out, None)
        return out

    meds = [(m, _name(m)) for m in p.get("medications", ())]

    def taking(name):
        for m, n in meds:
            if n != name:
                continue
            if m.get("start") and m["start"] > as_of.isoformat():
                continue
            if m.get("end"):
                if m["end"] >= as_of.isoformat():
                    return True
                continue
            if m.get("status") not in ("completed", "stopped", "cancelled", "not-taken"):
                return True
        return False

    def given_within(name, days):
        opens = (as_of - dt.timedelta(days=days)).isoformat()
        for m, n in meds:
            if n != name or (m.get("start") and m["start"] > as_of.isoformat()):
                continue
            if m.get("start") and m["start"] >= opens:
                return True
            if m.get("end"):
                if m["end"] >= opens:
                    return True
            elif m.get("status") not in ("completed", "stopped", "cancelled", "not-taken"):
                return True
        return False

    rps = conds.get("radiation pneumonitis", [])

    def rp_active_grade():
        out = False
        for c in rps:
            if c["onset"] > as_of.isoformat():
                continue
            active = c.get("status") not in ("inactive", "remission", "resolved")
            grade = _grade(c.get("grade"))
            out = _or(out, _and(active, None if grade is None else 2 <= grade <= 3))
        return out

    def rp_recent():
        boundary = _months_before(as_of, 2).isoformat()
        return any(boundary < c["onset"] <= as_of.isoformat() for c in rps)

    crit = []
    crit.append(any(_name(x) == "chest radiotherapy" and x["start"] <= as_of.isoformat()
                    for x in p.get("procedures", ())))  # I1
    ecog = value("ECOG", 30)
    crit.append(None if ecog is None else 0 <= ecog <= 3)  # I2
    crit.append(rp_active_grade())  # I3
    crit.append(not given_within("hematopoietic growth factor", 7))  # I4.0 (no transfusion generated)
    anc = value("ANC")
    crit.append(None if anc is None else _ge(anc, 1.5))  # I4.1
    plt_ = value("PLT")
    crit.append(None if plt_ is None else _ge(plt_, 80))  # I4.2
    hgb = value("HGB")
    crit.append(None if hgb is None else _ge(hgb, 80))  # I4.3
    crit.append(uln_test("TBil", 1.5, _le))  # I4.4
    crit.append(_and(uln_test("ALT", 2.5, _le), uln_test("AST", 2.5, _le)))  # I4.5
    scr = value("serum creatinine")
    wt = value("body weight")
    crcl = None
    if scr is not None and wt is not None and age is not None and sex is not None:
        crcl = (140 - age) * wt / (72 * scr) * (0.85 if female else 1)
    crit.append(None if crcl is None else _ge(crcl, 60))  # I4.6
    anticoag = taking("anticoagulant")
    crit.append(_or(_or(uln_test("INR", 1.5, _le), uln_test("PT", 1.5, _le)), anticoag))  # I4.7
    crit.append(attested("ECG normal, or abnormal without clinical significance"))  # I4.8
    lvef = value("LVEF", 30)
    crit.append(None if lvef is None else _ge(lvef, 50))  # I4.9
    crit.append(rp_recent())  # I5
    crit.append(attested("life expectancy of at least 6 months"))  # I6
    crit.append(attested("informed consent"))  # I7
    crit.append(None if age is None else 18 <= age <= 75)  # I8
    # exclusions
    # Not recorded, pregnancy and lactation are "no" for a patient not of childbearing potential
    # (elig's default reading: female, aged 12 to 55, no menopause or sterilisation on record).
    childbearing = _and(None if sex is None else female, None if age is None else 12 <= age <= 55)
    preg, lact = p.get("pregnant"), p.get("lactating")
    preg = False if preg is None and childbearing is False else preg
    lact = False if lact is None and childbearing is False else lact
    male = None if sex is None else sex == "male"  # the contraception clause asks men and women of childbearing potential
    crit.append(_or(preg, lact, _and(_or(male, childbearing),
                                     attested("unwilling or unable to use effective contraception"))))  # E1
    crit.append(history_of("chronic bronchitis"))  # E2 (no emphysema, cor pulmonale generated)
    crit.append(False)  # E3 lung resection: none generated
    crit.append(False)  # E4 tumour progression: none generated
    crit.append(attested("severe lung infection"))  # E5
    crit.append(attested("uncontrolled severe systemic disease"))  # E6 (no psychosis generated)
    crit.append(acute_within("myocardial infarction", 6))  # E7
    if scr is None:
        creat_high = None
    elif sex is None:
        hi_m, hi_f = _gt(scr, 1.5), _gt(scr, 1.4)
        creat_high = hi_m if hi_m == hi_f else None
    else:
        creat_high = _gt(scr, 1.4 if female else 1.5)
    crit.append(_or(uln_test("AST", 2.5, _gt), uln_test("ALT", 2.5, _gt), creat_high))  # E8
    crit.append(False)  # E9 infections: none generated
    crit.append(anticoag)  # E10
    crit.append(False)  # E11
    crit.append(False)  # E12
    crit.append(False)  # E13
    crit.append(attested("previous participation in a stem cell clinical study"))  # E14
    crit.append(attested("investigator judges the participant unsuitable"))  # E15
    inc, exc = crit[:17], crit[17:]
    if any(x is False for x in inc) or any(x is True for x in exc):
        verdict = "ineligible"
    elif all(x is True for x in inc) and all(x is False for x in exc):
        verdict = "eligible"
    else:
        verdict = "undetermined"
    return verdict, crit


_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}


def _grade(g) -> int | None:
    if g is None:
        return None
    if isinstance(g, int):
        return g
    word = str(g).split()[-1]
    return int(word) if word.isdigit() else _ROMAN.get(word)


# ---------------------------------------------------------------- the organ-function criteria alone
ORGAN_PROTOCOL = ROOT / "bench" / "organ_function.elig"
ORGAN_CRITERIA = ("I4.1", "I4.2", "I4.3", "I4.4", "I4.5", "I4.6", "I4.7", "I4.9", "E8")


def handwritten_organ(p: dict) -> tuple[str, list]:
    """Decide the 9 organ-function criteria of NCT06021067 (bench/organ_function.elig) by hand.

    The same careful reading as ``handwritten`` (newest usable value in the window, unit
    conversions, ULNs from reference ranges or the sex-specific default, Cockcroft-Gault,
    the anticoagulant waiver of I4.7, Kleene logic), for these criteria only, so the
    benchmark of issue 14 compares elig with the least a programmer would write for them.
    """
    as_of = AS_OF
    today = as_of.isoformat()
    sex = p.get("sex")
    female = sex == "female"
    labs: dict[str, list[dict]] = {}
    undated = set()
    for o in p["observations"]:
        if o.get("date") is not None:
            labs.setdefault(_name(o), []).append(o)
        else:
            undated.add(_name(o))

    def reading(name, o):
        v = o.get("value")
        if not isinstance(v, (int, float)):
            return None
        factor = TO_CANONICAL.get((name, o.get("unit")))
        if factor is None:
            return None
        v = v * factor
        lo, hi = PLAUSIBLE[name]
        return v if lo <= v <= hi else None

    def newest(name, days):
        past = [o for o in labs.get(name, ()) if o["date"] <= today]
        if not past or name in undated:
            return None, None
        when = max(o["date"] for o in past)
        if (as_of - dt.date.fromisoformat(when)).days > days:
            return None, None
        same = [o for o in past if o["date"] == when]
        v = reading(name, same[0])
        for twin in same[1:]:
            w = reading(name, twin)
            if v is not None and w is not None and not math.isclose(v, w, rel_tol=REL):
                return None, same[0]
        return v, same[0]

    def value(name, days=7):
        return newest(name, days)[0]

    def uln_test(name, factor, test):
        v, o = newest(name, 7)
        if v is None:
            return None
        ref = o.get("reference_range")
        if ref and ref.get("high") is not None:
            uln = ref["high"] * TO_CANONICAL[(name, ref.get("unit", o.get("unit")))]
        else:
            uln = DEFAULT_ULN[name]
            if isinstance(uln, dict):
                uln = uln.get(sex)
                if uln is None:
                    return None
        return test(v, factor * uln)

    span = _span(p.get("birth_date"))
    age = None
    if span is not None:
        def years(b):
            return as_of.year - b.year - ((as_of.month, as_of.day) < (b.month, b.day))
        age = years(span[1]) if years(span[0]) == years(span[1]) else None

    def taking_anticoagulant():
        for m in p.get("medications", ()):
            if _name(m) != "anticoagulant" or (m.get("start") and m["start"] > today):
                continue
            if m.get("end"):
                if m["end"] >= today:
                    return True
                continue
            if m.get("status") not in ("completed", "stopped", "cancelled", "not-taken"):
                return True
        return False

    crit = []
    anc = value("ANC")
    crit.append(None if anc is None else _ge(anc, 1.5))  # I4.1
    plt_ = value("PLT")
    crit.append(None if plt_ is None else _ge(plt_, 80))  # I4.2
    hgb = value("HGB")
    crit.append(None if hgb is None else _ge(hgb, 80))  # I4.3
    crit.append(uln_test("TBil", 1.5, _le))  # I4.4
    crit.append(_and(uln_test("ALT", 2.5, _le), uln_test("AST", 2.5, _le)))  # I4.5
    scr = value("serum creatinine")
    wt = value("body weight")
    crcl = None
    if scr is not None and wt is not None and age is not None and sex is not None:
        crcl = (140 - age) * wt / (72 * scr) * (0.85 if female else 1)
    crit.append(None if crcl is None else _ge(crcl, 60))  # I4.6
    crit.append(_or(_or(uln_test("INR", 1.5, _le), uln_test("PT", 1.5, _le)), taking_anticoagulant()))  # I4.7
    lvef = value("LVEF", 30)
    crit.append(None if lvef is None else _ge(lvef, 50))  # I4.9
    if scr is None:
        creat_high = None
    elif sex is None:
        hi_m, hi_f = _gt(scr, 1.5), _gt(scr, 1.4)
        creat_high = hi_m if hi_m == hi_f else None
    else:
        creat_high = _gt(scr, 1.4 if female else 1.5)
    crit.append(_or(uln_test("AST", 2.5, _gt), uln_test("ALT", 2.5, _gt), creat_high))  # E8
    inc, exc = crit[:8], crit[8:]
    if any(x is False for x in inc) or any(x is True for x in exc):
        verdict = "ineligible"
    elif all(x is True for x in inc) and all(x is False for x in exc):
        verdict = "eligible"
    else:
        verdict = "undetermined"
    return verdict, crit
