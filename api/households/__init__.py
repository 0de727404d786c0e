"""Households: towns, villages, households, persons, enrollments, roster import, premium quotes."""
