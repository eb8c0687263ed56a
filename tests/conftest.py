import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Small RL networks run fastest on one thread; it also keeps parallel CI runs from contending.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _eager_unless_marked(request):
    # On-policy configs compile by default. Most tests build many small agents of different
    # shapes, and compiling each would take minutes; they run eagerly, while the tests marked
    # `compile` (tests/test_compile.py, tests/test_cuda.py) check the compiled path against it.
    import torch._dynamo

    disable = torch._dynamo.config.disable
    torch._dynamo.config.disable = request.node.get_closest_marker("compile") is None
    yield
    torch._dynamo.config.disable = disable
