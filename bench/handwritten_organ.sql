-- NCT06021067's organ-function criteria (I4.1 to I4.9) decided by hand in DuckDB SQL: the
-- measurement of the issue that asked for SQL (newest value in a window, unit conversion,
-- upper limits of normal, Cockcroft-Gault). The same reading as bench/handwritten.sql, which
-- decides all 32 criteria; bench/bench_sql.py checks both against elig before it measures.
-- {AS_OF} is replaced by the evaluation date.
WITH
lab_rows AS (
  SELECT pk, d_lo, seq,
    date_diff('day', DATE '1900-01-01', d_lo) * 1000000 + (999999 - seq) AS k,  -- newest day, then first
    coalesce(concept, CASE codes[1]
      WHEN 'http://loinc.org|29463-7' THEN 'body weight' WHEN 'http://loinc.org|89247-1' THEN 'ECOG'
      WHEN 'http://loinc.org|751-8' THEN 'ANC' WHEN 'http://loinc.org|777-3' THEN 'PLT'
      WHEN 'http://loinc.org|718-7' THEN 'HGB' WHEN 'http://loinc.org|1975-2' THEN 'TBil'
      WHEN 'http://loinc.org|1742-6' THEN 'ALT' WHEN 'http://loinc.org|1920-8' THEN 'AST'
      WHEN 'http://loinc.org|2160-0' THEN 'serum creatinine' WHEN 'http://loinc.org|6301-6' THEN 'INR'
      WHEN 'http://loinc.org|5902-2' THEN 'PT' WHEN 'http://loinc.org|10230-1' THEN 'LVEF' END) AS name,
    CASE WHEN problem IS NULL THEN value END AS value, unit, ref_high, coalesce(ref_unit, unit) AS ref_unit
  FROM observations
  WHERE d_lo IS NULL OR (d_lo >= DATE '{AS_OF}' - 30 AND d_lo <= DATE '{AS_OF}')  -- no window is longer
),
factors AS (
  SELECT * FROM (VALUES
    ('body weight', 'kg', 1.0e0), ('body weight', 'lb', 0.45359237e0), ('ECOG', '', 1.0e0),
    ('ANC', '10^9/L', 1.0e0), ('PLT', '10^9/L', 1.0e0), ('PLT', '10^3/µL', 1.0e0), ('HGB', 'g/L', 1.0e0),
    ('HGB', 'g/dL', 10.0e0), ('TBil', 'mg/dL', 1.0e0), ('TBil', 'µmol/L', 584.66e0 / 10000),
    ('ALT', 'U/L', 1.0e0), ('AST', 'U/L', 1.0e0), ('serum creatinine', 'mg/dL', 1.0e0),
    ('serum creatinine', 'µmol/L', 113.12e0 / 10000), ('INR', '', 1.0e0), ('PT', 's', 1.0e0), ('LVEF', '%', 1.0e0)
  ) f(name, unit, factor)
),
plausible AS (
  SELECT * FROM (VALUES ('body weight', 2, 400), ('ANC', 0, 100), ('PLT', 0, 2000), ('HGB', 10, 260),
    ('TBil', 0, 50), ('ALT', 0, 20000), ('AST', 0, 20000), ('serum creatinine', 0.1, 30), ('INR', 0.5, 15),
    ('PT', 5, 200), ('LVEF', 5, 95)) p(name, lo, hi)
),
lab AS (  -- per patient and lab: the first and the last result of the newest day (value -1: cannot be read)
  SELECT pk, name, max(k) AS k_first, max(k_last) AS k_last, arg_max_null(v, k) AS v_first,
    arg_max_null(v, k_last) AS v_last, arg_max_null(ref, k) AS ref, bool_or(d_lo IS NULL) AS undated
  FROM (
    SELECT r.pk, r.name, r.d_lo, r.k, date_diff('day', DATE '1900-01-01', r.d_lo) * 1000000 + r.seq AS k_last,  -- newest day, then last
      coalesce(CASE WHEN r.value * f.factor BETWEEN p.lo AND p.hi THEN r.value * f.factor END, -1) AS v,
      r.ref_high * rf.factor AS ref
    FROM lab_rows r JOIN plausible p ON p.name = r.name
    LEFT JOIN factors f ON f.name = r.name AND f.unit = coalesce(r.unit, '')
    LEFT JOIN factors rf ON rf.name = r.name AND rf.unit = r.ref_unit) x
  GROUP BY pk, name
),
newest AS (  -- the newest result, unless stale, undated results exist, or two results of that day disagree
  SELECT pk, name, ref,
    CASE WHEN undated OR k_first IS NULL
           OR k_first // 1000000 < date_diff('day', DATE '1900-01-01', DATE '{AS_OF}')
                                   - (CASE WHEN name IN ('ECOG', 'LVEF') THEN 30 ELSE 7 END) THEN NULL  -- stale
         WHEN v_first < 0 THEN NULL
         WHEN k_first % 1000000 + k_last % 1000000 <> 999999 AND v_last >= 0
           AND abs(v_first - v_last) > 1e-9 * greatest(abs(v_first), abs(v_last)) THEN NULL  -- twins disagree
         ELSE v_first END AS v
  FROM lab
),
o AS (
  SELECT pk,
    max(v) FILTER (WHERE name = 'ECOG') AS ecog, max(v) FILTER (WHERE name = 'ANC') AS anc,
    max(v) FILTER (WHERE name = 'PLT') AS plt, max(v) FILTER (WHERE name = 'HGB') AS hgb,
    max(v) FILTER (WHERE name = 'TBil') AS tbil, max(ref) FILTER (WHERE name = 'TBil') AS tbil_ref,
    max(v) FILTER (WHERE name = 'ALT') AS alt, max(ref) FILTER (WHERE name = 'ALT') AS alt_ref,
    max(v) FILTER (WHERE name = 'AST') AS ast, max(ref) FILTER (WHERE name = 'AST') AS ast_ref,
    max(v) FILTER (WHERE name = 'serum creatinine') AS scr, max(v) FILTER (WHERE name = 'body weight') AS wt,
    max(v) FILTER (WHERE name = 'INR') AS inr, max(ref) FILTER (WHERE name = 'INR') AS inr_ref,
    max(v) FILTER (WHERE name = 'PT') AS pt, max(ref) FILTER (WHERE name = 'PT') AS pt_ref,
    max(v) FILTER (WHERE name = 'LVEF') AS lvef
  FROM newest GROUP BY pk
),
m AS (
  SELECT pk, bool_or((concept = 'anticoagulant' OR codes[1] = 'http://www.whocc.no/atc|B01AA03')
                     AND (CASE WHEN e_lo IS NOT NULL THEN e_lo >= DATE '{AS_OF}'
                          ELSE coalesce(status, '') NOT IN ('completed', 'stopped', 'cancelled', 'not-taken') END)) AS anticoag
  FROM medications WHERE s_lo IS NULL OR s_lo <= DATE '{AS_OF}' GROUP BY pk
),
a AS (
  SELECT pk, any_value(value) FILTER (WHERE key = 'ecg normal, or abnormal without clinical significance') AS ecg
  FROM attestations GROUP BY pk
),
x AS (
  SELECT p.pk, p.patient_id, p.sex, p.sex = 'female' AS female,
    CASE WHEN date_diff('year', p.birth_lo, DATE '{AS_OF}')
                - (CASE WHEN strftime(DATE '{AS_OF}', '%m%d') < strftime(p.birth_lo, '%m%d') THEN 1 ELSE 0 END)
            = date_diff('year', p.birth_hi, DATE '{AS_OF}')
                - (CASE WHEN strftime(DATE '{AS_OF}', '%m%d') < strftime(p.birth_hi, '%m%d') THEN 1 ELSE 0 END)
         THEN date_diff('year', p.birth_lo, DATE '{AS_OF}')
                - (CASE WHEN strftime(DATE '{AS_OF}', '%m%d') < strftime(p.birth_lo, '%m%d') THEN 1 ELSE 0 END)
         END AS age,
    o.* EXCLUDE (pk), coalesce(m.anticoag, FALSE) AS anticoag, a.ecg
  FROM patients p LEFT JOIN o ON o.pk = p.pk LEFT JOIN m ON m.pk = p.pk LEFT JOIN a ON a.pk = p.pk
),
u AS (
  SELECT *, coalesce(tbil_ref, 1.2) AS tbil_uln, coalesce(inr_ref, 1.1) AS inr_uln, coalesce(pt_ref, 13.5) AS pt_uln,
    coalesce(alt_ref, CASE sex WHEN 'male' THEN 40 WHEN 'female' THEN 35 END) AS alt_uln,
    coalesce(ast_ref, CASE sex WHEN 'male' THEN 40 WHEN 'female' THEN 35 END) AS ast_uln,
    CASE WHEN sex IS NOT NULL THEN (140 - age) * wt / (72 * scr) * (CASE WHEN female THEN 0.85 ELSE 1 END) END AS crcl
  FROM x
),
k AS (
  SELECT pk, patient_id,
    [anc >= 1.5 - 1e-9 * 1.5, plt >= 80 - 1e-9 * 80, hgb >= 80 - 1e-9 * 80,
     tbil <= 1.5 * tbil_uln + 1e-9 * greatest(tbil, 1.5 * tbil_uln),
     alt <= 2.5 * alt_uln + 1e-9 * greatest(alt, 2.5 * alt_uln) AND ast <= 2.5 * ast_uln + 1e-9 * greatest(ast, 2.5 * ast_uln),
     crcl >= 60 - 1e-9 * greatest(crcl, 60),
     inr <= 1.5 * inr_uln + 1e-9 * greatest(inr, 1.5 * inr_uln) OR pt <= 1.5 * pt_uln + 1e-9 * greatest(pt, 1.5 * pt_uln)
       OR anticoag,
     ecg, lvef >= 50 - 1e-9 * 50] AS inc
  FROM u
)
SELECT pk, patient_id,
  CASE WHEN list_bool_or(list_transform(inc, lambda v: v IS NOT DISTINCT FROM FALSE)) THEN 'ineligible'
       WHEN list_bool_and(list_transform(inc, lambda v: coalesce(v, FALSE))) THEN 'eligible'
       ELSE 'undetermined' END AS verdict,
  inc, [] AS exc
FROM k ORDER BY pk
