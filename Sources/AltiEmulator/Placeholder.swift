import Hummingbird
import GraphQL
