"""The RAPID network: anisotropic atrous module, 3D U-Net, presets, ablation variants, model files."""
from .blocks import AtrousModule, ConvNormAct, IsotropicASPP, PlaneASPP, same_padding
from .modelfile import LoadedModel, check_inputs, load_model, save_model
from .unet import (VARIANTS, NetworkSettings, RapidUNet3D, build_network, count_parameters, network_preset,
                   preset_patch, receptive_field, scale_rates, scale_z_rates)

__all__ = ["AtrousModule", "ConvNormAct", "IsotropicASPP", "PlaneASPP", "same_padding", "NetworkSettings",
           "RapidUNet3D", "build_network", "count_parameters", "network_preset", "preset_patch", "receptive_field",
           "scale_rates", "scale_z_rates", "VARIANTS", "LoadedModel", "load_model", "save_model",
           "check_inputs"]
