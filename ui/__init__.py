"""The pygame clip-comparison app (an extra: pip install "pbrl[ui]")."""
