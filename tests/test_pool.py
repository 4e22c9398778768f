import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.pool import ImagePool


def images(start, count):
    # Image k is filled with the value k, so outputs tell where they came from.
    return np.stack([np.full((2, 2, 1), float(k), "float32") for k in range(start, start + count)])


def ids(batch):
    return [int(round(float(v))) for v in np.asarray(batch)[:, 0, 0, 0]]


def test_fills_first_returning_the_new_images():
    pool = ImagePool(4, seed=0)
    assert ids(pool(images(0, 2))) == [0, 1]
    assert ids(pool(images(2, 2))) == [2, 3]
    assert int(pool.count.numpy()) == 4
    assert sorted(ids(pool.images.numpy())) == [0, 1, 2, 3]


def test_when_full_half_the_images_come_from_history():
    pool = ImagePool(5, seed=0)
    pool(images(0, 5))
    returned = [ids(pool(images(k, 1)))[0] for k in range(100, 500)]
    from_history = sum(1 for k, r in zip(range(100, 500), returned) if r != k)
    assert 150 < from_history < 250  # p = 0.5, 400 draws: 200 +- 5 sigma
    # Whatever it returned from history was stored earlier and is now replaced.
    stored = set(ids(pool.images.numpy()))
    assert len(stored) == 5


def test_returned_history_image_is_swapped_for_the_new_one():
    pool = ImagePool(1, seed=3)
    pool(images(0, 1))
    previous = 0
    for k in range(1, 30):
        out = ids(pool(images(k, 1)))[0]
        now = ids(pool.images.numpy())[0]
        if out != k:  # swapped: got the stored one, the new one is kept
            assert out == previous and now == k
        else:  # passed through: storage unchanged
            assert now == previous
        previous = now


def test_size_zero_is_the_identity():
    pool = ImagePool(0)
    x = images(0, 3)
    np.testing.assert_array_equal(pool(x), x)
    assert pool.weights == []


def test_same_seed_same_draws_and_checkpoint_resumes_them(tmp_path):
    first = ImagePool(3, seed=7)
    first(images(0, 3))
    checkpoint = tf.train.Checkpoint(pool=first)
    path = checkpoint.write(str(tmp_path / "pool"))
    expected = [ids(first(images(k, 1))) for k in range(10, 30)]

    resumed = ImagePool(3, seed=123)  # a different seed: the state must come from the file
    resumed.build((None, 2, 2, 1))
    tf.train.Checkpoint(pool=resumed).read(path).assert_consumed()
    assert [ids(resumed(images(k, 1))) for k in range(10, 30)] == expected


@pytest.mark.parametrize("jit", [False, True])
def test_works_inside_tf_function_and_xla(jit):
    pool = ImagePool(2, seed=0)
    pool.build((None, 2, 2, 1))

    @tf.function(jit_compile=jit)
    def query(batch):
        return pool(batch)

    assert ids(query(images(0, 2))) == [0, 1]
    outs = [ids(query(images(k, 2))) for k in range(10, 40, 2)]
    assert int(pool.count.numpy()) == 2
    assert any(o != [k, k + 1] for o, k in zip(outs, range(10, 40, 2)))


def test_unknown_batch_size_gives_the_same_queries_in_order():
    static, dynamic = ImagePool(3, seed=4), ImagePool(3, seed=4)
    dynamic.build((None, 2, 2, 1))

    @tf.function(input_signature=[tf.TensorSpec((None, 2, 2, 1), tf.float32)])
    def query(batch):
        return dynamic(batch)

    for start, count in ((0, 2), (2, 3), (5, 1), (6, 4), (10, 3)):
        assert ids(query(images(start, count))) == ids(static(images(start, count)))
    np.testing.assert_array_equal(static.images.numpy(), dynamic.images.numpy())


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="pool_size=-1"):
        ImagePool(-1)
    pool = ImagePool(2)
    pool.build((None, 2, 2, 1))
    with pytest.raises(ValueError, match=r"holds images of shape \(2, 2, 1\).*\(1, 4, 4, 1\)"):
        pool(np.zeros((1, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match="needs the images' channels"):
        ImagePool(2).build((None, 4, 4, None))


def sized(value, height, width):
    return np.full((1, height, width, 1), float(value), "float32")


def test_any_size_pool_keeps_each_images_own_size():
    pool = ImagePool(2, seed=0)
    pool.build((None, None, None, 1))
    assert not hasattr(pool, "images") and len(pool.slots) == 2
    assert pool(sized(0, 3, 5)).shape == (1, 3, 5, 1)
    assert pool(sized(1, 4, 2)).shape == (1, 4, 2, 1)
    shapes = {}
    for k in range(2, 40):
        out = np.asarray(pool(sized(k, 2 + k % 3, 4)))
        shapes[int(out[0, 0, 0, 0])] = out.shape
    # Images from history come back at the size they were stored with.
    assert shapes.get(0, (1, 3, 5, 1)) == (1, 3, 5, 1) and shapes.get(1, (1, 4, 2, 1)) == (1, 4, 2, 1)
    assert any(k != v for k, v in zip(range(2, 40), sorted(shapes)))  # some came from history


def test_any_size_pool_resumes_from_a_checkpoint_in_a_graph(tmp_path):
    first = ImagePool(3, seed=7)
    first.build((None, None, None, 1))
    for k in range(3):
        first(sized(k, 2 + k, 3))
    path = tf.train.Checkpoint(pool=first).write(str(tmp_path / "pool"))
    expected = [np.asarray(first(sized(k, 3, 2 + k % 2))) for k in range(10, 25)]

    resumed = ImagePool(3, seed=123)
    resumed.build((None, None, None, 1))
    tf.train.Checkpoint(pool=resumed).read(path).assert_consumed()
    query = tf.function(resumed, input_signature=[tf.TensorSpec((1, None, None, 1), tf.float32)])
    for k, want in zip(range(10, 25), expected):
        np.testing.assert_array_equal(query(sized(k, 3, 2 + k % 2)), want)
