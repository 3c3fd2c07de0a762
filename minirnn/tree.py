"""Recurrent states as values: a state is an array, or a tuple of states.

A vanilla or GRU layer's state is one (B, H) array, an LSTM layer's is the tuple (H, C), and a
stack of L > 1 layers has a tuple of L layer states. These helpers walk such a tree, so the
model, the thread split, the trainer and the gradient checks handle every cell alike instead of
each assuming one array. Only tuples are branches; everything else is a leaf.
"""


def leaves(tree):
    """The arrays of a state, depth first: [H] for a vanilla layer, [H, C] for an LSTM layer."""
    if isinstance(tree, tuple):
        return [leaf for branch in tree for leaf in leaves(branch)]
    return [tree]


def tree_map(fn, *trees):
    """fn applied leaf by leaf to trees of the same structure; returns a tree of that structure.

    Example: tree_map(lambda a, b: a + b, (H1, C1), (H2, C2)) == (H1 + H2, C1 + C2).
    """
    first = trees[0]
    if isinstance(first, tuple):
        if any(not isinstance(t, tuple) or len(t) != len(first) for t in trees[1:]):
            raise ValueError('states of different structure')
        return tuple(tree_map(fn, *branches) for branches in zip(*trees))
    return fn(*trees)


def unflatten(template, flat):
    """A tree shaped like `template` whose leaves are taken in order from the list `flat`."""
    flat = list(flat)
    if len(flat) != len(leaves(template)):
        raise ValueError(f'{len(flat)} arrays for a state of {len(leaves(template))}')
    it = iter(flat)
    return tree_map(lambda _: next(it), template)


def structure(tree):
    """The tree with each leaf replaced by its shape: for messages that describe a state."""
    return tree_map(lambda a: tuple(a.shape), tree)
