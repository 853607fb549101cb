"""Stage 5, report: OUT/index.html, results.csv/json and equivalence.json, computed only
from the files a study wrote (`build`); tables, figures, the equivalence analysis, the
ablation tables and the regression nets' agreement each have a module."""
