r"""The data server (synth_torch.server): what it binds, how much it accepts, which backend paints backgrounds.

    python -m synth_torch.server --config=configs/synth.py:procedural            # CPU, no weights
    python -m synth_torch.server --config=configs/synth.py:sdxl \
        --config.model.base_dir=/models/sdxl-base --config.model.controlnet_dir=/models/cn-inpaint \
        --config.model.vae_dir=/models/sdxl-vae-fp16 --config.device=cuda:0
    # Any other address than loopback needs CURVE keys (python -m syngrpo_jax.protocol.curve_keys --out_dir=k/):
    python -m synth_torch.server --config=configs/synth.py:sdxl --config.bind_address=0.0.0.0 \
        --config.curve.server_secret_key_file=k/server.key_secret ...

The admin token for `shutdown` comes from config.admin_token or, if that is unset, from the environment variable
SYNGRPO_SYNTH_ADMIN_TOKEN; with neither, remote shutdown is disabled.
"""
import ml_collections
from ml_collections import config_dict


def get_config(arg: str = "procedural") -> ml_collections.ConfigDict:
    if arg not in ("procedural", "sdxl"):
        raise ValueError(f"configs/synth.py: arg={arg!r} must be 'procedural' or 'sdxl'")
    c = ml_collections.ConfigDict()

    # --- network -------------------------------------------------------------------------------------------
    c.bind_address = "127.0.0.1"  # loopback by default; anything else requires the CURVE keys below
    c.port = 5557  # 0 = any free port (the bound endpoint is printed and written to --ready_file)
    c.curve = ml_collections.ConfigDict()
    c.curve.server_secret_key_file = config_dict.placeholder(str)  # `.key_secret` file (zmq certificate)
    c.curve.server_public_key = config_dict.placeholder(str)  # or the Z85 keys themselves, both of them
    c.curve.server_secret_key = config_dict.placeholder(str)
    c.curve.authorized_clients_dir = config_dict.placeholder(str)  # if set, only clients whose public key
    #   file is in this directory may connect; if None, any client that knows the server's public key may
    c.admin_token = config_dict.placeholder(str)  # shutdown token; None -> $SYNGRPO_SYNTH_ADMIN_TOKEN
    c.admin_retry_s = 1.0  # after a wrong admin token, no token is checked for this long (any client): guessing
    #   runs at 1/admin_retry_s per second; a right token sent meanwhile is refused too (launchers then SIGTERM)

    # --- admission -----------------------------------------------------------------------------------------
    c.queue_size = 64  # jobs waiting for the worker; past it, requests get an `overloaded` error (their bytes
    #   count in memory.max_queued_bytes too)
    # Every bound below is checked before a job runs, by the router thread unless said otherwise; each check's
    # cost is bounded by the limit it enforces (synth_torch.image_check), so no message stalls router or worker.
    c.limits = ml_collections.ConfigDict()
    c.limits.max_message_bytes = 32 * 2**20  # all frames of one request; ZeroMQ drops a connection that sends a
    #   frame over twice this. Receiving and checking one costs the router ~1-10 ms
    c.limits.max_header_bytes = 64 * 2**10  # the msgpack header frame (unpacked in C, ~0.1 ms)
    c.limits.max_image_pixels = 4096 * 4096  # decoded width * height: bounds the worker's decode (~0.3 s for a
    #   4096^2 JPEG) and working set (see memory below), and each job's reply reservation (~3 bytes a pixel)
    c.limits.max_boxes = 256  # ground-truth boxes per job
    c.limits.max_description_chars = 2000  # the prompt
    c.limits.max_id_chars = 128  # request, job and sample ids
    c.limits.max_steps = 200  # a request's params.steps
    c.limits.max_png_chunks = 8192  # chunks the router walks in a PNG, 0.1-1 us each (~1-9 ms at the limit
    #   here); libpng writes 8 KB IDATs, 4096 of them in 32 MB. A 32 MB file of empty chunks is refused in ms
    c.limits.max_jpeg_markers = 256  # JPEG segments before the first scan the router walks (encoders write
    #   ~10-30); a 32 MB file of empty COM markers is refused in 0.1 ms
    c.limits.max_jpeg_scans = 64  # JPEG scans, counted by the worker before it decodes (~5 ms per 10 MB): each
    #   scan is a decoder pass over the whole image (~12-16 ms at 4096^2, so <= ~1 s a job); a progressive
    #   encoder writes ~10. A 250 KB file repeating one scan 3,000x (35 s of decoding) is refused at once

    # --- memory (synth_torch.admission): bytes, per client and in total -------------------------------------------
    # RSS stays below  idle RSS + max_queued_bytes + max_reply_bytes + the worker's working set for one batch
    # (procedural backend: ~60 bytes per pixel, e.g. ~250 MB for a 2048x2048 job). A client over a budget gets
    # `overloaded` naming it; a client that disconnects has its queued jobs dropped unrun and its bytes released.
    # (glibc may keep up to ~50 MB of a finished batch's freed memory; MALLOC_MMAP_THRESHOLD_=131072 in the
    # server's environment returns it at once: measured, +16 MiB held vs +100 MiB unbounded, 30 unread replies.)
    c.memory = ml_collections.ConfigDict()
    c.memory.max_queued_bytes = 256 * 2**20  # request frames of queued + running jobs, all clients (>= message)
    c.memory.max_reply_bytes = 1024 * 2**20  # reply bytes held for all clients: reserved for queued/running jobs
    #   (the PNG's worst case, 3 bytes per pixel + a byte per row), waiting in outboxes, or just handed to ZeroMQ
    c.memory.max_client_reply_bytes = 256 * 2**20  # the same for one client: a client that never reads its
    #   replies is refused new jobs past this; must be >= (reply_hwm + 2) x the largest reply (~4 x max pixels)
    c.memory.reply_hwm = 1  # replies ZeroMQ may hold per connection (its send pipe); more wait in the outbox
    c.memory.request_hwm = 16  # requests ZeroMQ may hold per connection before the router reads them (past it,
    #   TCP pushes back on the sender). Transient and outside the budgets above: the router reads at GB/s

    # --- worker ----------------------------------------------------------------------------------------------
    c.device = "auto"  # "cuda:N", "cpu", or "auto" (cuda:0 when available); one worker thread owns it
    c.dtype = "auto"  # "float16", "bfloat16", "float32", or "auto" (float16 on GPU, float32 on CPU)
    c.torch_threads = 0  # CPU threads for torch (0 = its default, one per core); on a CPU shared with a trainer
    #   use fewer: oversubscribed OpenMP threads slow the diffusers backend down by 5-10x
    c.nice = 0  # 0-19 added to the process's niceness: on CPUs shared with a trainer, a positive value keeps the
    #   server's decode/mask/encode work from slowing training steps (async synthesis hides the latency it adds)
    c.batch_size = 1  # jobs of equal image size and generation params run as one backend call, up to this many
    c.batch_wait_s = 0.0  # a batch that is not full waits this long for more equal jobs (latency for throughput)
    c.png_compress_level = 1  # 0-9 for the returned PNG (lossless at any level; 1 is fast)
    c.seed_offset = 0  # added to every request's seed (decorrelates two servers fed the same seeds)

    # --- masks -----------------------------------------------------------------------------------------------
    c.mask = ml_collections.ConfigDict()
    c.mask.dilation_px = 8  # the outpaint mask grows this far over the foreground's edge (blends the seam;
    #   ground-truth box pixels are pasted back exactly afterwards regardless)
    c.mask.feather_px = 4.0  # Gaussian blur radius of the mask edge when compositing (0 = hard edge)

    # --- segmentation (refines the foreground beyond the boxes) ----------------------------------------------
    c.segmentation = ml_collections.ConfigDict()
    c.segmentation.model = "none"  # "none" (foreground = union of boxes) or "ben2" (needs the ben2 package)
    c.segmentation.weights_path = config_dict.placeholder(str)  # BEN2_Base.pth, a local file
    c.segmentation.threshold = 0.5  # alpha above this counts as foreground
    c.segmentation.margin_px = 16  # segmented pixels this close to a box are kept as foreground too

    # --- backend -----------------------------------------------------------------------------------------------
    c.backend = "procedural" if arg == "procedural" else "diffusers_sdxl"  # or "procedural"
    c.procedural_delay_s = 0.0  # extra seconds per job (emulates a GPU backend's latency in CPU demos)
    c.model = ml_collections.ConfigDict()
    c.model.base_dir = config_dict.placeholder(str)  # SDXL inpainting base, a diffusers directory
    c.model.controlnet_dir = config_dict.placeholder(str)  # ControlNetModel directory
    c.model.vae_dir = config_dict.placeholder(str)  # None -> the base directory's vae/
    c.steps = 20  # denoising steps (a request's params.steps overrides)
    c.guidance = 7.0  # classifier-free guidance scale (params.guidance overrides)
    c.strength = 0.99  # inpainting strength; 1.0 ignores the old background entirely (params.strength)
    c.controlnet_scale = 0.5  # controlnet_conditioning_scale
    c.control_image = "masked"  # "masked": the image with the outpaint region blacked out; "image": as is
    c.negative_prompt = "blurry, low quality, distorted, watermark, text"
    c.working_resolution = 1024  # images are resized to about this many pixels squared for the backend...
    c.resolution_multiple = 0  # ...with sides a multiple of this (0 = the model's: VAE factor x UNet depth)
    return c
