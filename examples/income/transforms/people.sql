-- One row per person of the 1994 census extract, cleaned: text trimmed, the
-- census's '?' for "not known" made NULL (LightGBM handles missing values
-- itself), and the income band turned into a 0/1 label. The original
-- train/test split of the UCI files is dropped: the models split at random.
SELECT
    age,
    nullif(trim(workclass), '?') AS workclass,
    fnlwgt,
    trim(education) AS education,
    education_num,
    trim(marital_status) AS marital_status,
    nullif(trim(occupation), '?') AS occupation,
    trim(relationship) AS relationship,
    trim(race) AS race,
    trim(sex) AS sex,
    capital_gain,
    capital_loss,
    hours_per_week,
    nullif(trim(native_country), '?') AS native_country,
    CASE trim(income) WHEN '>50K' THEN 1 WHEN '<=50K' THEN 0 END AS high_income
FROM adult
