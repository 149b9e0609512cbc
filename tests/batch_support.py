"""Helpers of the batch (SQL) tests: the interpreter's outcomes, and records made awkward on purpose."""

from __future__ import annotations

import copy
import datetime as dt
import random

from elig.engine.evaluator import evaluate


def interpreter_rows(checked, patients, as_of):
    """(verdict, ((criterion, outcome), ...)) per patient, from the interpreter."""
    out = []
    for patient in patients:
        r = evaluate(checked, patient, as_of)
        out.append((str(r.verdict), tuple((c.id, str(c.outcome)) for c in r.criteria)))
    return out


def differences(checked, patients, as_of, batch_rows):
    """Every patient and criterion where the SQL engine and the interpreter disagree."""
    found = []
    for patient, expected, row in zip(patients, interpreter_rows(checked, patients, as_of), batch_rows):
        got = (row.verdict, tuple(row.outcomes))
        if got != expected:
            diff = [(a[0], a[1], b[1]) for a, b in zip(expected[1], got[1]) if a != b]
            found.append((patient.id, expected[0], got[0], diff))
    return found


def _shift(text, days: int) -> str:
    text = str(text).split("T")[0][:10]
    d = dt.date.fromisoformat(text + "-01-01"[len(text) - 4:] if len(text) < 10 else text)
    return (d + dt.timedelta(days=days)).isoformat()


def awkward(record: dict, rng: random.Random, as_of: dt.date) -> dict:
    """A copy of a native record with a few of the things real records do wrong or imprecisely.

    Partial and missing dates, dates after the evaluation date, times of day, two results
    at the same instant, values without or with the wrong unit, unreadable values, missing
    sex or a partial birth date, refuted or resolved conditions, missing attestations.
    """
    r = copy.deepcopy(record)
    obs = r.get("observations") or []
    for _ in range(rng.randint(1, 4)):
        if not obs:
            break
        o = obs[rng.randrange(len(obs))]
        date = str(o.get("date", as_of.isoformat())).split("T")[0][:10]
        kind = rng.randrange(14)
        if kind == 0:
            o["date"] = date[:7]  # known to the month
        elif kind == 1:
            o["date"] = _shift(date, rng.randint(1, 20))  # maybe after the evaluation date
        elif kind == 2:
            o.pop("date", None)
        elif kind == 3:
            o["date"] = f"{date}T{rng.randint(0, 23):02d}:{rng.choice([0, 15, 30, 45]):02d}:00Z"
        elif kind == 4:  # a twin at the same date, agreeing or not
            twin = copy.deepcopy(o)
            if isinstance(twin.get("value"), (int, float)) and not isinstance(twin.get("value"), bool):
                twin["value"] = twin["value"] * rng.choice([1, 1, 1.5, 0.5])
            obs.insert(rng.randrange(len(obs) + 1), twin)
        elif kind == 5:
            o.pop("unit", None)
        elif kind == 6:
            o["unit"] = rng.choice(["mg", "mmol/L", "bogus unit", "kg", "%", "g/dL"])
        elif kind == 7:
            o["value"] = rng.choice(["n/a", "positive", "<5", "1,5"])
        elif kind == 8:  # an older value behind the newest
            older = copy.deepcopy(o)
            older["date"] = _shift(date, -rng.randint(1, 40))
            obs.append(older)
        elif kind == 9 and isinstance(o.get("value"), (int, float)) and not isinstance(o.get("value"), bool):
            o["value"] = o["value"] * rng.choice([0.9, 1.1, 10, 0.1, 0])
        elif kind == 10:
            o["date"] = _shift(date, -rng.randint(1, 400))
        elif kind == 11:
            o["reference_range"] = rng.choice([{"high": 30}, {"high": 2.0, "unit": "mg/dL"}, {"low": 1},
                                               {"high": 50, "unit": "bogus"}])
        elif kind == 12:
            o["date"] = date[:4]  # known to the year
        else:
            o["value"] = rng.choice([0, -1, 1e6, 0.001])
    for key in ("conditions", "procedures", "medications"):
        for e in r.get(key) or []:
            if rng.random() < 0.3:
                field = {"conditions": "onset", "procedures": "start", "medications": "start"}[key]
                kind = rng.randrange(8)
                if kind == 0 and e.get(field):
                    e[field] = str(e[field])[:7]
                elif kind == 1:
                    e.pop(field, None)
                elif kind == 2:
                    e["status"] = rng.choice(["resolved", "inactive", "completed", "stopped", "active", "on-hold"])
                elif kind == 3 and e.get(field):
                    e["end" if key != "conditions" else "abatement"] = _shift(e[field], rng.randint(-5, 200))
                elif kind == 4:
                    e["verification"] = rng.choice(["refuted", "entered-in-error", "provisional"])
                elif kind == 5:
                    e.pop("grade", None)
                elif kind == 6 and e.get(field):
                    e[field] = _shift(e[field], rng.randint(-400, 60))
                else:
                    e[field] = _shift(as_of.isoformat(), rng.randint(-10, 5))
    r.setdefault("observations", obs)
    day = lambda back: _shift(as_of.isoformat(), -back)  # noqa: E731
    if rng.random() < 0.25:  # evidence of pregnancy or breastfeeding, instead of the record's own answer
        r.pop("pregnant", None)
        r.pop("lactating", None)
        for _ in range(rng.randint(1, 3)):
            kind = rng.randrange(5)
            when = day(rng.choice([0, 2, 10, 40, 400]))
            if kind == 0:
                obs.append({"concept": "pregnancy test", "result": rng.choice(["positive", "negative", "equivocal"]),
                            "date": when})
            elif kind == 1:
                obs.append({"concept": "serum hCG", "value": rng.choice([1, 3, 10, 30, 300]), "unit": "IU/L",
                            "date": when})
            elif kind == 2:
                r.setdefault("conditions", []).append({"concept": "pregnancy diagnosis", "onset": when,
                                                       "status": rng.choice(["active", "resolved", None])})
            elif kind == 3:
                obs.append({"concept": "breastfeeding status", "result": rng.choice(["positive", "negative"]),
                            "date": when})
            else:
                obs.append({"concept": "pregnancy status", "result": rng.choice(["positive", "negative"]),
                            "date": when})
    if rng.random() < 0.1 and obs:  # a local code whose display alone names the concept
        o = rng.choice(obs)
        if o.get("concept") and isinstance(o.get("value"), (int, float)):
            obs.append({"codes": [{"system": "http://example.org/local-lab", "code": "L1", "display": o["concept"]}],
                        "value": o["value"], "unit": o.get("unit"), "date": rng.choice([o.get("date"), day(30), None])})
    if rng.random() < 0.15:  # radiotherapy recorded by its general code, with or without a body site
        proc = {"codes": [{"system": "http://snomed.info/sct", "code": "1217123003"}], "start": day(90),
                "end": day(60)}
        site = rng.choice([None, "SNOMED:51185008", "SNOMED:12921003"])
        if site:
            proc["body_site"] = site
        r["procedures"] = [proc] + [p for p in r.get("procedures") or [] if rng.random() < 0.5]
    att = r.get("attestations")
    if isinstance(att, dict) and att and rng.random() < 0.15:  # the same statement answered twice
        key = rng.choice(list(att))
        value = att[key]["value"] if isinstance(att[key], dict) else att[key]
        att[key.upper()] = rng.choice([value, not value if isinstance(value, bool) else True])
    if rng.random() < 0.1:  # entries that cannot be placed: no concept nor code, unreadable dates, odd statuses
        kind = rng.choice(["observations", "conditions", "procedures", "medications"])
        entry = {"observations": {"value": 1.0, "unit": "mg/dL", "date": day(1)},
                 "conditions": {"onset": day(20)}, "procedures": {"start": day(20)},
                 "medications": {"start": day(20)}}[kind]
        r.setdefault(kind, []).append(entry)
    for key in ("conditions", "procedures", "medications"):
        for e in r.get(key) or []:
            if rng.random() < 0.06:
                e[rng.choice(["onset", "start", "end", "abatement"])] = rng.choice(["2024-13-45", "last spring"])
            if rng.random() < 0.05:
                e["status"] = rng.choice(["garbage", "unknown", "draft", "Active"])
    if rng.random() < 0.15:
        r.pop("sex", None)
    elif rng.random() < 0.1:
        r["sex"] = rng.choice(["male", "female"])
    if rng.random() < 0.1 and r.get("birth_date"):
        r["birth_date"] = str(r["birth_date"])[: rng.choice([4, 7])]
    att = r.get("attestations")
    if isinstance(att, dict) and att and rng.random() < 0.3:
        att.pop(rng.choice(list(att)))
    if rng.random() < 0.1:
        r.pop("pregnant", None)
    return r
