"""From results files to answers: fits, penalties, bounds, findings, reports, comparisons."""
