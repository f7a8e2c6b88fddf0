"""eSpeak NG through its C API (ctypes), from the espeakng-loader wheel: no system package needed.

The library has global state, so it is initialised once per process (synchronous output into a
callback that collects the 16-bit samples). Some of that state is never reset by any API call (the
pitch-flutter phase and glottal cycle counter in wavegen.c), so one call's audio depends slightly on
what the process synthesized before it; callers that need reproducible audio synthesize a fixed
sequence of texts in a fresh process (see holdtts.data.minicorpus).
"""
from __future__ import annotations

import ctypes
import threading

import espeakng_loader
import numpy as np

from holdtts.errors import HoldttsError

SAMPLE_RATE = 22050  # LJSpeech's rate; eSpeak NG's native rate

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report a data error instead of exiting the process
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_EE_NOT_FOUND = 2
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
RATE_RANGE = (80, 450)  # espeakRATE_MINIMUM, espeakRATE_MAXIMUM (words per minute)

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)

_lock = threading.Lock()  # the C library is not re-entrant
_lib: ctypes.CDLL | None = None
_chunks: list[np.ndarray] = []
_current_voice: str | None = None
_callback = None  # keeps the ctypes callback alive as long as the library may call it


def _collect(wav, num_samples, events) -> int:
    if num_samples > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    return 0  # 0: continue synthesis


def _load() -> ctypes.CDLL:
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    return lib


def _initialised() -> ctypes.CDLL:
    """Load and initialise the library once per process; call with _lock held."""
    global _lib, _callback
    if _lib is None:
        lib = _load()
        data_path = espeakng_loader.get_data_path()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT)
        if rate < 0:
            raise HoldttsError(f"eSpeak NG failed to initialise (data path {data_path})")
        if rate != SAMPLE_RATE:
            raise HoldttsError(f"eSpeak NG reports {rate} Hz output; holdtts needs {SAMPLE_RATE} Hz")
        _callback = _SYNTH_CALLBACK(_collect)
        lib.espeak_SetSynthCallback(_callback)
        _lib = lib
    return _lib


def espeak_version() -> str:
    """eSpeak NG's version string, e.g. '1.52.0'."""
    with _lock:
        return _initialised().espeak_Info(None).decode()


def _use_voice(lib: ctypes.CDLL, voice: str) -> None:
    """Make `voice` the library's current voice (call with _lock held)."""
    global _current_voice
    if _current_voice == voice:
        return
    status = lib.espeak_SetVoiceByName(voice.encode())
    if status == _EE_NOT_FOUND:
        raise HoldttsError(f"eSpeak NG has no voice {voice!r} (try 'en-us' or 'en')")
    if status != _EE_OK:
        raise HoldttsError(f"eSpeak NG could not select voice {voice!r} (error {status})")
    _current_voice = voice


class EspeakSynthesizer:
    """One eSpeak NG voice; `synthesize` returns 22050 Hz mono int16 audio."""

    def __init__(self, voice: str = "en-us"):
        self.voice = voice
        with _lock:
            self._lib = _initialised()
            self._select_voice()

    def _select_voice(self) -> None:
        _use_voice(self._lib, self.voice)

    def synthesize(self, text: str, rate_wpm: int = 175, pitch: int = 50,
                   pitch_range: int = 50) -> np.ndarray:
        """Speak `text` at `rate_wpm` words per minute, base pitch and pitch range in 0..100."""
        if not RATE_RANGE[0] <= rate_wpm <= RATE_RANGE[1]:
            raise ValueError(f"rate_wpm must be in {RATE_RANGE[0]}..{RATE_RANGE[1]}, got {rate_wpm}")
        for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
            if not 0 <= value <= 100:
                raise ValueError(f"{name} must be in 0..100, got {value}")
        data = text.encode("utf-8") + b"\0"
        with _lock:
            lib = self._lib
            self._select_voice()  # another instance in this process may have switched it
            settings = ((_PARAM_RATE, rate_wpm), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range))
            for parameter, value in settings:
                status = lib.espeak_SetParameter(parameter, int(value), 0)
                if status != _EE_OK:
                    raise HoldttsError(f"eSpeak NG rejected parameter {parameter}={value} (error {status})")
            _chunks.clear()
            status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status == _EE_OK:
                status = lib.espeak_Synchronize()
            audio = np.concatenate(_chunks) if _chunks else np.zeros(0, dtype=np.int16)
            _chunks.clear()
        if status != _EE_OK:
            raise HoldttsError(f"eSpeak NG failed to synthesize {text!r} (error {status})")
        return audio.astype(np.int16, copy=False)


_PHONEMES_IPA = 0x02  # espeak_TextToPhonemes phonememode: IPA in UTF-8


def phonemize_ipa(text: str, voice: str = "en-us") -> str:
    """eSpeak NG's IPA transcription of `text` (stress marks included), as the voice would speak it.

    TextToPhonemes returns one clause per call and advances the text pointer; the clauses are joined
    with spaces.
    """
    clauses = []
    with _lock:
        lib = _initialised()
        _use_voice(lib, voice)
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        pointer = ctypes.c_char_p(ctypes.addressof(buffer))
        while pointer.value:
            out = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA)
            if out:
                clauses.append(out.decode("utf-8").strip())
    return " ".join(c for c in clauses if c)
