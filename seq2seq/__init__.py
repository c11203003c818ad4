"""seq2seq: train and evaluate German->English translators (rnn, lstm, bahdanau, transformer)
and see, by source length, what attention was invented for."""

__version__ = "0.1.0"
