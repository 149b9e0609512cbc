-- NCT06021067 decided by hand in DuckDB SQL, as a programmer would write it for this
-- generated population (bench/bench_sql.py): the floor elig's compiled query is measured
-- against. Same 32 criteria and verdict as bench_screen.handwritten(); newest value by
-- arg_max within the window, unit conversion by CASE, Kleene logic with NULL as unknown.
-- {AS_OF} is replaced by the evaluation date.
WITH
o AS (
  SELECT pk,
    arg_max(value, d_lo) FILTER (WHERE concept = 'ANC' AND d_lo >= DATE '{AS_OF}' - 7) AS anc,
    arg_max(value, d_lo) FILTER (WHERE concept = 'PLT' AND d_lo >= DATE '{AS_OF}' - 7) AS plt,
    arg_max(CASE unit WHEN 'g/dL' THEN value * 10 ELSE value END, d_lo)
      FILTER (WHERE concept = 'HGB' AND d_lo >= DATE '{AS_OF}' - 7) AS hgb,
    arg_max(value, d_lo) FILTER (WHERE concept = 'TBil' AND d_lo >= DATE '{AS_OF}' - 7) AS tbil,
    arg_max(ref_high, d_lo) FILTER (WHERE concept = 'TBil' AND d_lo >= DATE '{AS_OF}' - 7) AS tbil_uln,
    arg_max(value, d_lo) FILTER (WHERE concept = 'ALT' AND d_lo >= DATE '{AS_OF}' - 7) AS alt,
    arg_max(ref_high, d_lo) FILTER (WHERE concept = 'ALT' AND d_lo >= DATE '{AS_OF}' - 7) AS alt_uln,
    arg_max(value, d_lo) FILTER (WHERE concept = 'AST' AND d_lo >= DATE '{AS_OF}' - 7) AS ast,
    arg_max(ref_high, d_lo) FILTER (WHERE concept = 'AST' AND d_lo >= DATE '{AS_OF}' - 7) AS ast_uln,
    arg_max(CASE unit WHEN 'µmol/L' THEN value / 88.42 ELSE value END, d_lo)
      FILTER (WHERE concept = 'serum creatinine' AND d_lo >= DATE '{AS_OF}' - 7) AS scr,
    arg_max(CASE unit WHEN 'lb' THEN value * 0.45359237 ELSE value END, d_lo)
      FILTER (WHERE concept = 'body weight' AND d_lo >= DATE '{AS_OF}' - 7) AS wt,
    arg_max(value, d_lo) FILTER (WHERE concept = 'INR' AND d_lo >= DATE '{AS_OF}' - 7) AS inr,
    arg_max(coalesce(ref_high, 1.1), d_lo) FILTER (WHERE concept = 'INR' AND d_lo >= DATE '{AS_OF}' - 7) AS inr_uln,
    arg_max(value, d_lo) FILTER (WHERE concept = 'PT' AND d_lo >= DATE '{AS_OF}' - 7) AS pt,
    arg_max(ref_high, d_lo) FILTER (WHERE concept = 'PT' AND d_lo >= DATE '{AS_OF}' - 7) AS pt_uln,
    arg_max(value, d_lo) FILTER (WHERE concept = 'ECOG' AND d_lo >= DATE '{AS_OF}' - 30) AS ecog,
    arg_max(value, d_lo) FILTER (WHERE concept = 'LVEF' AND d_lo >= DATE '{AS_OF}' - 30) AS lvef
  FROM observations WHERE d_lo <= DATE '{AS_OF}' AND d_lo >= DATE '{AS_OF}' - 30
  GROUP BY pk
),
c AS (
  SELECT pk,
    bool_or(concept = 'radiation pneumonitis' AND grade BETWEEN 2 AND 3) AS rp_grade,
    bool_or(concept = 'radiation pneumonitis' AND date_diff('day', s_lo, DATE '{AS_OF}') / 30.4375 < 2) AS rp_recent,
    bool_or(concept = 'chronic bronchitis') AS bronchitis,
    bool_or(concept = 'myocardial infarction'
            AND coalesce(e_lo, DATE '{AS_OF}') >= DATE '{AS_OF}' - INTERVAL 6 MONTH) AS mi
  FROM conditions GROUP BY pk
),
pr AS (SELECT pk, bool_or(concept = 'chest radiotherapy') AS rt FROM procedures GROUP BY pk),
m AS (SELECT pk, bool_or(concept = 'anticoagulant' AND status = 'active') AS anticoag FROM medications GROUP BY pk),
a AS (
  SELECT pk,
    any_value(value) FILTER (WHERE key = 'ecg normal, or abnormal without clinical significance') AS ecg,
    any_value(value) FILTER (WHERE key = 'life expectancy of at least 6 months') AS life,
    any_value(value) FILTER (WHERE key = 'informed consent') AS consent,
    any_value(value) FILTER (WHERE key = 'unwilling or unable to use effective contraception') AS contra,
    any_value(value) FILTER (WHERE key = 'severe lung infection') AS infection,
    any_value(value) FILTER (WHERE key = 'uncontrolled severe systemic disease') AS systemic,
    any_value(value) FILTER (WHERE key = 'previous participation in a stem cell clinical study') AS previous,
    any_value(value) FILTER (WHERE key = 'investigator judges the participant unsuitable') AS unsuitable
  FROM attestations GROUP BY pk
),
x AS (
  SELECT p.pk, p.patient_id, p.sex = 'female' AS female,
    date_diff('year', p.birth_lo, DATE '{AS_OF}')
      - (CASE WHEN strftime(DATE '{AS_OF}', '%m%d') < strftime(p.birth_lo, '%m%d') THEN 1 ELSE 0 END) AS age,
    o.*, coalesce(c.rp_grade, FALSE) AS rp_grade, coalesce(c.rp_recent, FALSE) AS rp_recent,
    coalesce(c.bronchitis, FALSE) AS bronchitis, coalesce(c.mi, FALSE) AS mi, coalesce(pr.rt, FALSE) AS rt,
    coalesce(m.anticoag, FALSE) AS anticoag, p.pregnant, p.lactating, a.*
  FROM patients p LEFT JOIN o ON o.pk = p.pk LEFT JOIN c ON c.pk = p.pk LEFT JOIN pr ON pr.pk = p.pk
  LEFT JOIN m ON m.pk = p.pk LEFT JOIN a ON a.pk = p.pk
),
k AS (
  SELECT pk, patient_id,
    [rt, ecog BETWEEN 0 AND 3, rp_grade, TRUE, anc >= 1.5, plt >= 80, hgb >= 80 - 1e-9,
     tbil <= 1.5 * tbil_uln * (1 + 1e-12), alt <= 2.5 * alt_uln * (1 + 1e-12) AND ast <= 2.5 * ast_uln * (1 + 1e-12),
     (140 - age) * wt / (72 * scr) * (CASE WHEN female THEN 0.85 ELSE 1 END) >= 60,
     anticoag OR inr <= 1.5 * inr_uln * (1 + 1e-12) OR pt <= 1.5 * pt_uln * (1 + 1e-12),
     ecg, lvef >= 50, rp_recent, life, consent, age BETWEEN 18 AND 75] AS inc,
    [(CASE WHEN female THEN pregnant OR lactating ELSE FALSE END) OR contra, bronchitis, FALSE, FALSE,
     infection, systemic, mi,
     ast > 2.5 * ast_uln * (1 + 1e-12) OR alt > 2.5 * alt_uln * (1 + 1e-12)
       OR scr > (CASE WHEN female THEN 1.4 ELSE 1.5 END),
     FALSE, anticoag, FALSE, FALSE, FALSE, previous, unsuitable] AS exc
  FROM x
)
SELECT pk, patient_id,
  CASE WHEN list_bool_or(list_transform(inc, lambda v: v IS NOT DISTINCT FROM FALSE))
         OR list_bool_or(list_transform(exc, lambda v: coalesce(v, FALSE))) THEN 'ineligible'
       WHEN list_bool_and(list_transform(inc, lambda v: coalesce(v, FALSE)))
         AND list_bool_and(list_transform(exc, lambda v: v IS NOT DISTINCT FROM FALSE)) THEN 'eligible'
       ELSE 'undetermined' END AS verdict
FROM k ORDER BY pk
