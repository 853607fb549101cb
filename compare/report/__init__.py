"""Stage 5, report: OUT/index.html, results.csv/json and equivalence.json, computed only
from the files a study wrote (`build`); tables, figures, the equivalence analysis, the
ablation tables each have a module; the regression nets' agreement is
`compare.run.regression.agreement` (the study fails on it too)."""
