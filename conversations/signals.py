"""The conversations app's signals."""

from django.dispatch import Signal

# Sent once committed, with `message_ids`: questions that waited their turn and were just
# granted a model slot (admission.py), whose tasks must now be sent (apps.py connects it).
question_granted = Signal()
