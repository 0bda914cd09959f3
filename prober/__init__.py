"""prober: a synthetic availability prober that tells an error page from a healthy one."""

__version__ = "0.1.0"
