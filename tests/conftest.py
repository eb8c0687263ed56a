import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Small RL networks run fastest on one thread; it also keeps parallel CI runs from contending.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
