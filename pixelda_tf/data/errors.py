"""The one exception the data layer raises for problems with the data itself."""

from pixelda_tf import errors



class DataError(errors.UserError, ValueError):
  """A data file or folder is missing, corrupt or inconsistent.

  The message names the file (or folder) and says what to do about it, so the
  command-line tools can print it as a single line instead of a traceback.
  """
