"""CRM targets: HubSpot, Salesforce and a generic REST target."""
