"""Public notices 公示: payment rosters and payment notices posted in the village for 3 days,
and payment reminders. Thin until the notices issue; the package exists so the layout is the
design card's (DESIGN.md, Layout)."""
