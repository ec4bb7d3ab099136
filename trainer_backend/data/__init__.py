"""Dataset ingestion: read a file, detect its format, normalize rows to Conversations, report row errors."""
from .conversation import Conversation, DataError, LoadedDataset, Message, RowError
from .loader import dataset_columns, load_dataset

__all__ = ["Conversation", "DataError", "LoadedDataset", "Message", "RowError", "dataset_columns",
           "load_dataset"]
