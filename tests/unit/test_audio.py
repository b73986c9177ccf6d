import numpy as np
import pytest
import soundfile as sf
import torch

from sentinel.audio import find_audio, load_audio
from sentinel.errors import AudioError, DataError


def _tone(sr, seconds=1.0, channels=2, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1).astype(np.float32)


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")])
@pytest.mark.parametrize("sr", [8000, 44100])
def test_reads_any_format_rate_and_channels(tmp_path, ext, fmt, sr):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, _tone(sr), sr, format=fmt)
    wave = load_audio(path, 16000)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.numel() - 16000) < 0.06 * 16000  # mp3 adds encoder padding
    spectrum = torch.fft.rfft(wave).abs()
    assert abs(int(spectrum.argmax()) * 16000 / wave.numel() - 440) < 10


def test_stereo_is_downmixed(tmp_path):
    x = _tone(16000)
    x[:, 1] = 0
    sf.write(tmp_path / "half.wav", x, 16000)
    assert abs(float(load_audio(tmp_path / "half.wav", 16000).abs().max()) - 0.25) < 0.01


def test_corrupt_and_empty_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(AudioError, match="broken.wav"):
        load_audio(bad, 16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav.*no audio"):
        load_audio(empty, 16000)


def test_find_audio_folders_globs_and_missing(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("a/x.wav", "a/b/y.FLAC", "a/notes.txt"):
        (tmp_path / p).write_bytes(b"")
    assert [p.name for p in find_audio([tmp_path / "a"])] == ["y.FLAC", "x.wav"]
    assert [p.name for p in find_audio([str(tmp_path / "a" / "*.wav")])] == ["x.wav"]
    with pytest.raises(DataError, match="nowhere"):
        find_audio([tmp_path / "nowhere"])
