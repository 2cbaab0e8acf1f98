import AltiCore
