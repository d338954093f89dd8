"""Is the Hugging Face hub reachable? Asked once before any hub download."""
from __future__ import annotations


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick request (honouring proxy settings) so offline machines fail in
    seconds instead of after huggingface_hub's ~25 s of retries."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        import httpx

        httpx.head(constants.ENDPOINT, timeout=timeout)
        return True
    except Exception:
        return False
