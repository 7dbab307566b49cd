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

    # --- admission -----------------------------------------------------------------------------------------
    c.queue_size = 64  # jobs waiting for the worker; past it, requests get an `overloaded` error
    c.limits = ml_collections.ConfigDict()
    c.limits.max_message_bytes = 32 * 2**20  # all frames of one request
    c.limits.max_header_bytes = 64 * 2**10  # the msgpack header frame
    c.limits.max_image_pixels = 4096 * 4096  # decoded width * height
    c.limits.max_boxes = 256  # ground-truth boxes per job
    c.limits.max_description_chars = 2000  # the prompt
    c.limits.max_id_chars = 128  # request, job and sample ids
    c.limits.max_steps = 200  # a request's params.steps

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
    #   the kept foreground's pixels are pasted back exactly afterwards regardless)
    c.mask.feather_px = 4.0  # Gaussian blur radius of the mask edge when compositing (0 = hard edge)

    # --- segmentation (refines the foreground beyond the boxes) ----------------------------------------------
    c.segmentation = ml_collections.ConfigDict()
    c.segmentation.model = "estimate"  # "estimate" (CPU: the object inside each box, synth_torch.foreground),
    #   "ben2" (needs the ben2 package and weights) or "none" (foreground = the union of the boxes)
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
