"""Exercise: a whole CLIP step by hand (lesson 12, using lessons 04, 08, 09 and 11).

`forward` below is the dual encoder and the CLIP loss on tiny shapes, written out one op per
line. Read it, then write `clip_step_backward`: the gradient of the loss with respect to EVERY
value of the forward, from the loss back to the weights. Then run

    python -m tinymm check clip_step

The checker runs the same forward with tinymm, asks autograd for the gradient of the loss with
respect to each of these values, and compares each of yours with it. It names the first wrong
one (going back from the loss, where a mistake starts), with its relative error, and lists the
ones that are right. You can check as you go: return only the gradients you have written so far.

Shapes: N = 4 image-caption pairs. Image side: x (N, X=6) features -> hidden H = 5 -> embedding
D = 3. Text side: ids (N, L=4) token ids from a vocabulary of V = 7, id 0 is padding; word
vectors of width K = 5. Captions 0 and 2 are the same, so the targets Y (N, N) are soft
(lesson 11, section 6); Y is symmetric, so the columns use Y too.

Every gradient has the shape of its value (dh1 like h1, dW1 like W1, ds like s: a 0-d array).
Going backwards, each line of the forward becomes one or two lines of gradient:
    Z, scale, s       lesson 11, section 4 (G = (P_rows + P_cols − 2Y) / 2N; then Z = scale · I Tᵀ)
    I -> f_img, T -> f_txt    lesson 09, section 2 (L2 normalisation: project, divide by the norm)
    linear layers     lesson 04, sections 2 and 3 (dx, dW, and db summed over the rows)
    a1 -> h1          lesson 04, section 4 (ReLU: the gradient passes where h1 > 0)
    pooled -> e       lesson 08, section 3 (masked mean: each real token gets an equal share)
    e -> E            lesson 08, section 2 (embedding: a repeated id collects every gradient)
No Python loop over the batch. Do not edit `forward` (the checker compares it with tinymm's).
"""
import numpy as np


def log_softmax(z, axis):
    """log softmax of z along ``axis``, with the maximum subtracted first (lesson 05)."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def forward(x, ids, W1, b1, W2, b2, E, W3, b3, s, Y):
    """The dual encoder's forward and the CLIP loss, one op per line. Returns every value by name."""
    # the image side: linear -> ReLU -> linear -> L2 normalise
    h1 = x @ W1.T + b1                                                  # (N, H)
    a1 = np.maximum(h1, 0)                                              # (N, H)
    f_img = a1 @ W2.T + b2                                              # (N, D)
    I = f_img / np.sqrt((f_img * f_img).sum(axis=1, keepdims=True))     # (N, D), rows of length 1
    # the text side: embedding -> masked mean -> linear -> L2 normalise
    e = E[ids]                                                          # (N, L, K)
    mask = (ids != 0).astype(e.dtype)                                   # (N, L), 1 for a real token
    pooled = (e * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)  # (N, K)
    f_txt = pooled @ W3.T + b3                                          # (N, D)
    T = f_txt / np.sqrt((f_txt * f_txt).sum(axis=1, keepdims=True))     # (N, D)
    # the CLIP loss
    scale = np.exp(s)                                                   # (), the logit scale e^s
    Z = scale * (I @ T.T)                                               # (N, N)
    loss = -0.5 * ((Y * log_softmax(Z, 1)).sum() + (Y * log_softmax(Z, 0)).sum()) / len(Z)  # ()
    return dict(x=x, ids=ids, W1=W1, b1=b1, W2=W2, b2=b2, E=E, W3=W3, b3=b3, s=s, Y=Y, h1=h1, a1=a1,
                f_img=f_img, I=I, e=e, mask=mask, pooled=pooled, f_txt=f_txt, T=T, scale=scale, Z=Z,
                loss=loss)


def clip_step_backward(v):
    """v: the dict `forward` returns (v["Z"], v["h1"], v["W1"], ...).

    Return a dict of gradients of the loss, named "d" + the value's name, in this order:
        dZ, dscale, ds, dI, dT, df_img, dW2, db2, da1, dh1, dW1, db1,
        df_txt, dW3, db3, dpooled, de, dE
    e.g. return dict(dZ=dZ, dscale=dscale, ds=ds)  while you are still working down the list.
    """
    # ---- write your code here ----
    raise NotImplementedError("clip_step_backward: write it, then run: python -m tinymm check clip_step")
    # ---- end of your code ----
