"""Review and annotation: reviewers' labels (annotations), subtask suggestions, the review page, Rerun."""
