"""ERP sources: declarative REST (``rest``) and SOAP (``soap``), plus profiles for real ERPs."""
