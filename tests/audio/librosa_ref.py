"""librosa_ref: numpy re-implementations of the librosa definitions that schema/audio-result.schema.json cites
(librosa 0.10: stft(center=True, pad_mode="constant"), feature.spectral_centroid / spectral_bandwidth /
spectral_rolloff / spectral_flatness, feature.zero_crossing_rate, filters.mel (Slaney), feature.mfcc,
filters.chroma + feature.chroma_stft(tuning=0), onset.onset_strength), written from librosa's documented
formulas with plain numpy (librosa itself is not a Debian package). hopper's figures are means over every frame;
these return the same means, so accuracy.py can compare them on generated signals.

Where hopper streams and librosa looks at the whole file, the reference does what hopper documents:
power_to_db's top_db floor follows the running maximum (TOP_DB_RUNNING below)."""
import numpy as np

AMIN = 1e-10


def fft_size(sr):
    n = 2048.0 * 2.0 ** round(np.log2(sr / 44100.0))
    return int(min(max(n, 16), 65536))


def mono(x):
    return x.mean(axis=1) if x.ndim == 2 else x


def stft_mag(y, n):
    hop = n // 4
    yp = np.pad(y, n // 2, mode="constant")
    T = 1 + len(y) // hop
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    idx = np.arange(n)[None, :] + hop * np.arange(T)[:, None]
    frames = yp[idx] * win
    return np.abs(np.fft.rfft(frames, axis=1)).T  # (bins, T)


def freqs(sr, n):
    return np.arange(n // 2 + 1) * sr / n


def centroid(S, f):
    s = S.sum(axis=0)
    c = np.where(s > 0, (f[:, None] * S).sum(axis=0) / np.where(s > 0, s, 1), 0)
    return c


def bandwidth(S, f):
    s = S.sum(axis=0)
    c = centroid(S, f)
    Sn = np.where(s > 0, S / np.where(s > 0, s, 1), 0)
    return np.sqrt((Sn * (f[:, None] - c[None, :]) ** 2).sum(axis=0))


def rolloff(S, f, pct=0.85):
    tot = np.cumsum(S, axis=0)
    thr = pct * tot[-1]
    ind = np.where(tot < thr[None, :], np.nan, 1.0)
    return np.nanmin(ind * f[:, None], axis=0)


def flatness(S):
    P = np.maximum(AMIN, S ** 2)
    return np.exp(np.mean(np.log(P), axis=0)) / np.mean(P, axis=0)


def zcr(x, n):
    """librosa.feature.zero_crossing_rate(frame_length=n, hop_length=n/4, center=True) per channel, mean over
    frames, then the mean over channels."""
    x = x if x.ndim == 2 else x[:, None]
    hop = n // 4
    out = []
    for c in range(x.shape[1]):
        y = x[:, c].copy()
        y[np.abs(y) <= 1e-10] = 0
        yp = np.pad(y, n // 2, mode="edge")
        s = np.signbit(yp)
        cross = np.concatenate([[False], s[1:] != s[:-1]])
        T = 1 + len(y) // hop
        cs = np.concatenate([[0], np.cumsum(cross)])
        # frame t: positions t*hop+1 .. t*hop+n-1 (the first of a frame is never a crossing: pad=False)
        starts = hop * np.arange(T)
        counts = cs[starts + n] - cs[starts + 1]
        out.append(np.mean(counts / n))
    return float(np.mean(out))


def hz_to_mel(f):
    f = np.asanyarray(f, dtype=float)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-30) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m):
    m = np.asanyarray(m, dtype=float)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(sr, n, n_mels=128):
    fft_f = freqs(sr, n)
    mel_f = mel_to_hz(np.linspace(0, hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    w = np.zeros((n_mels, len(fft_f)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        w[i] = np.maximum(0, np.minimum(lower, upper))
    w *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w


def mel_db_running(S, sr, n):
    """power_to_db(mel power, ref=1, amin=1e-10, top_db=80) with the floor under the running maximum."""
    M = mel_filters(sr, n) @ (S ** 2)
    D = 10 * np.log10(np.maximum(AMIN, M))
    run = np.maximum.accumulate(D.max(axis=0))
    return np.maximum(D, run[None, :] - 80.0)


def mfcc(D, k=13):
    N = D.shape[0]
    m = np.arange(N)
    basis = np.cos(np.pi * np.arange(k)[:, None] * (2 * m[None, :] + 1) / (2.0 * N))
    basis *= np.where(np.arange(k) == 0, np.sqrt(1.0 / N), np.sqrt(2.0 / N))[:, None]
    return basis @ D


def onset_strength(D):
    flux = np.maximum(0, D[:, 1:] - D[:, :-1]).mean(axis=0)
    env = np.concatenate([np.zeros(3), flux])  # lag 1 + n_fft // (2 * hop)
    return env[:D.shape[1]]


def chroma_filters(sr, n):
    frequencies = np.linspace(0, sr, n, endpoint=False)[1:]
    frqbins = 12 * np.log2(frequencies / (440.0 / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * 12], frqbins))
    binwidth = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, 12, dtype="d")).T
    D = np.remainder(D + 6 + 120, 12) - 6
    wts = np.exp(-0.5 * (2 * D / np.tile(binwidth, (12, 1))) ** 2)
    wts /= np.sqrt((wts ** 2).sum(axis=0, keepdims=True))
    wts *= np.tile(np.exp(-0.5 * (((frqbins / 12 - 5.0) / 2) ** 2)), (12, 1))
    wts = np.roll(wts, -3, axis=0)
    return wts[:, :n // 2 + 1]


def chroma_mean(S, sr, n):
    C = chroma_filters(sr, n) @ (S ** 2)
    mx = C.max(axis=0)
    C = np.where(mx[None, :] > 1e-30, C / np.where(mx > 1e-30, mx, 1)[None, :], 0)
    return C.mean(axis=1)


def all_features(x, sr):
    """The means hopper reports, from samples x (frames,) or (frames, channels) as libsndfile scales them."""
    n = fft_size(sr)
    S = stft_mag(mono(x), n)
    f = freqs(sr, n)
    D = mel_db_running(S, sr, n)
    M = mfcc(D)
    env = onset_strength(D)
    return {
        "spectral_centroid_hz": float(centroid(S, f).mean()),
        "spectral_bandwidth_hz": float(bandwidth(S, f).mean()),
        "spectral_rolloff_hz": float(rolloff(S, f).mean()),
        "spectral_flatness": float(flatness(S).mean()),
        "zero_crossing_rate": zcr(x, n),
        "mfcc_mean": M.mean(axis=1).tolist(),
        "mfcc_std": M.std(axis=1).tolist(),
        "chroma_mean": chroma_mean(S, sr, n).tolist(),
        "onset_strength_mean": float(env.mean()),
        "onset_strength_max": float(env.max()),
        "frames": S.shape[1],
    }


def power_to_db(M, top_db=80.0):
    """librosa.power_to_db(M, ref=1.0, amin=1e-10, top_db=80): the floor under the whole array's maximum."""
    D = 10 * np.log10(np.maximum(AMIN, M))
    return np.maximum(D, D.max() - top_db)


def contrast(S, sr, n_bands=6, fmin=200.0, quantile=0.02):
    """librosa.feature.spectral_contrast(S=S, sr=sr) (linear=False), line for line: (n_bands + 1, T) in dB.
    Raises ValueError where librosa raises ParameterError (a band edge at or above Nyquist)."""
    n = 2 * (S.shape[0] - 1)
    freq = freqs(sr, n)
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(octa[:-1] >= 0.5 * sr):
        raise ValueError("Frequency band exceeds Nyquist")
    valley = np.zeros((n_bands + 1, S.shape[1]))
    peak = np.zeros_like(valley)
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        current_band = np.logical_and(freq >= f_low, freq <= f_high)
        idx = np.flatnonzero(current_band)
        if k > 0:
            current_band[idx[0] - 1] = True
        if k == n_bands:
            current_band[idx[-1] + 1:] = True
        sub_band = S[current_band]
        if k < n_bands:
            sub_band = sub_band[:-1]
        idx = int(np.maximum(np.rint(quantile * np.sum(current_band)), 1))
        sortedr = np.sort(sub_band, axis=0)
        valley[k] = np.mean(sortedr[:idx], axis=0)
        peak[k] = np.mean(sortedr[-idx:], axis=0)
    return power_to_db(peak) - power_to_db(valley)
