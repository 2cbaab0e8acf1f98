import AltiNet
