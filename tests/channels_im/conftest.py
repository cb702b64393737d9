from tests.channels_im.selftest_entries import self_test

__all__ = ["self_test"]
