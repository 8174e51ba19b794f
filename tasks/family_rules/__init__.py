"""family_rules: multiple-choice families that each share a hidden convention the feedback reveals.

``families`` holds the families, their conventions and the checker that applies a convention to a
question; ``generate`` writes the split files; ``verifier`` scores a response (reward 1/0 and
feedback that states the family's convention on a wrong answer); ``utils`` is the lm-eval glue.
"""
